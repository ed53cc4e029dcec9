/* SPDX-License-Identifier: MIT */
/* The notifier pool: the email outbox and SMTP delivery. */
#include "manas360/notify.h"

/* XXX: the notifier pool runs, drains and answers ping only;
 * the email outbox and SMTP delivery are not built yet. */
const struct pool_def notify_pool_def = {"notifier", NULL, 0, NULL};
