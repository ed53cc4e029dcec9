/* SPDX-License-Identifier: MIT */
/*
 * The raw password-hash rate that bounds login throughput: libsodium argon2id at the
 * interactive limits, the same cost the auth pool pays per login.
 *
 *   hash_rate --hash-rate [SECONDS [THREADS]]    defaults: 5 seconds, 2 threads
 *
 * Prints one line that starts with the hashes per second.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define HASH_RATE_DEFAULT_SECONDS 5
#define HASH_RATE_DEFAULT_THREADS 2
#define HASH_RATE_SECONDS_MAX 600
#define HASH_RATE_THREADS_MAX 64
#define HASH_RATE_EXIT_USAGE 2

static const char hash_rate_usage_line[] = "usage: hash_rate --hash-rate [SECONDS [THREADS]]\n";
static const char hash_rate_password[] = "bench-password-of-ordinary-length";

/* Shared by every hashing thread; written only before they start and through atomics. */
struct hash_rate_run {
    double deadline;
    atomic_long hashes;
    atomic_int failed;
};

static double hash_rate_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hashes until the deadline; a hash started before it counts even if it ends after. */
static void *hash_rate_worker(void *arg)
{
    struct hash_rate_run *run = arg;
    char hash[crypto_pwhash_STRBYTES];

    while (hash_rate_now() < run->deadline) {
        if (crypto_pwhash_str(hash, hash_rate_password, strlen(hash_rate_password),
                              crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
            atomic_store(&run->failed, 1);
            break;
        }
        atomic_fetch_add(&run->hashes, 1);
    }
    return NULL;
}

/* Parses a decimal integer in [min, max]; returns 0 and writes *out, or -1. */
static int hash_rate_parse_int(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

/* Reads `--hash-rate [SECONDS [THREADS]]`; returns 0, or -1 on a usage error. */
static int hash_rate_parse_args(int argc, char **argv, long *seconds, long *threads)
{
    if (argc < 2 || argc > 4 || strcmp(argv[1], "--hash-rate") != 0)
        return -1;
    if (argc >= 3 && hash_rate_parse_int(argv[2], 1, HASH_RATE_SECONDS_MAX, seconds) != 0)
        return -1;
    if (argc == 4 && hash_rate_parse_int(argv[3], 1, HASH_RATE_THREADS_MAX, threads) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct hash_rate_run run = {0};
    pthread_t threads[HASH_RATE_THREADS_MAX];
    long seconds = HASH_RATE_DEFAULT_SECONDS;
    long thread_count = HASH_RATE_DEFAULT_THREADS;
    long started = 0;
    double start;
    double elapsed;

    if (hash_rate_parse_args(argc, argv, &seconds, &thread_count) != 0) {
        fputs(hash_rate_usage_line, stderr);
        return HASH_RATE_EXIT_USAGE;
    }
    if (sodium_init() < 0) {
        fputs("hash_rate: libsodium failed to initialise\n", stderr);
        return EXIT_FAILURE;
    }

    start = hash_rate_now();
    run.deadline = start + (double)seconds;
    atomic_init(&run.hashes, 0);
    atomic_init(&run.failed, 0);
    for (; started < thread_count; started++) {
        if (pthread_create(&threads[started], NULL, hash_rate_worker, &run) != 0)
            break;
    }
    for (long i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    elapsed = hash_rate_now() - start;

    if (started < thread_count || atomic_load(&run.failed)) {
        fputs("hash_rate: a hashing thread failed (out of memory?)\n", stderr);
        return EXIT_FAILURE;
    }
    printf("%.2f hashes/s threads=%ld hashes=%ld seconds=%.2f\n",
           (double)atomic_load(&run.hashes) / elapsed, thread_count, atomic_load(&run.hashes),
           elapsed);
    return EXIT_SUCCESS;
}
