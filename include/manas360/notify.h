/* SPDX-License-Identifier: MIT */
/* The notifier pool: the email outbox and SMTP delivery. */
#ifndef MANAS360_NOTIFY_H
#define MANAS360_NOTIFY_H

#include "manas360/pool.h"

extern const struct pool_def notify_pool_def;

#endif
