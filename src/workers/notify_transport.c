/* SPDX-License-Identifier: MIT */
/*
 * Delivering a rendered message: over SMTP with libcurl (STARTTLS whenever the server offers
 * it), or, without SMTP_HOST, as an .eml file under MAIL_DIR for development and tests.
 */
#include "notify_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "manas360/err.h"

#define NOTIFY_CONNECT_TIMEOUT_S 10L
#define NOTIFY_URL_MAX_BYTES 600
#define NOTIFY_PATH_MAX_BYTES 4096
#define NOTIFY_SMTPS_PORT 465 /* TLS from the first byte rather than STARTTLS */
#define NOTIFY_DIR_MODE 0700
#define NOTIFY_FILE_MODE 0600

/* The message as libcurl reads it. */
struct notify_upload {
    const char *data;
    size_t len;
    size_t off;
    const atomic_bool *stopping;
};

int notify_transport_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : M360_EINTERNAL;
}

void notify_transport_cleanup(void)
{
    curl_global_cleanup();
}

const char *notify_transport_name(const struct cfg *cfg)
{
    return cfg->smtp_host != NULL && cfg->smtp_host[0] != '\0' ? "smtp" : "file";
}

/* ---- SMTP ---------------------------------------------------------------------------- */

static size_t notify_smtp_read(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct notify_upload *up = arg;
    size_t n = up->len - up->off;

    if (n > size * nmemb)
        n = size * nmemb;
    memcpy(ptr, up->data + up->off, n);
    up->off += n;
    return n;
}

/* Cuts a send short when the sender stops; the row is then retried later. */
static int notify_smtp_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                                curl_off_t ulnow)
{
    const struct notify_upload *up = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(up->stopping) ? 1 : 0;
}

/* smtp://host:port/ehlo-domain; an IPv6 literal gets its brackets. */
static void notify_smtp_url(const struct cfg *cfg, const char *from, char *url, size_t size)
{
    const char *domain = strrchr(from, '@');
    bool v6 = strchr(cfg->smtp_host, ':') != NULL && cfg->smtp_host[0] != '[';

    snprintf(url, size, "%s://%s%s%s:%d/%s", cfg->smtp_port == NOTIFY_SMTPS_PORT ? "smtps" : "smtp",
             v6 ? "[" : "", cfg->smtp_host, v6 ? "]" : "", cfg->smtp_port,
             domain != NULL ? domain + 1 : "");
}

static void notify_smtp_options(CURL *curl, const struct cfg *cfg, struct notify_upload *up,
                                char *errbuf)
{
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, notify_smtp_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, up);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->len);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, notify_smtp_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, up);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    /* Credentials never travel in clear: with them, a server that offers no STARTTLS (or a
     * man in the middle who strips it) fails the send instead. */
    curl_easy_setopt(curl, CURLOPT_USE_SSL,
                     (long)(cfg->smtp_user != NULL && cfg->smtp_user[0] != '\0' ? CURLUSESSL_ALL
                                                                                : CURLUSESSL_TRY));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, NOTIFY_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, NOTIFY_SEND_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    if (cfg->smtp_user != NULL && cfg->smtp_user[0] != '\0') {
        curl_easy_setopt(curl, CURLOPT_USERNAME, cfg->smtp_user);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, cfg->smtp_password);
    }
}

static int notify_smtp_send(const struct cfg *cfg, const struct notify_row *row,
                            const struct notify_mail *mail, const atomic_bool *stopping,
                            char error[NOTIFY_ERROR_MAX_BYTES])
{
    struct notify_upload up = {mail->text, mail->len, 0, stopping};
    char errbuf[CURL_ERROR_SIZE] = "";
    char url[NOTIFY_URL_MAX_BYTES];
    char from[NOTIFY_ADDRESS_MAX_BYTES + 2];
    char to[NOTIFY_ADDRESS_MAX_BYTES + 2];
    struct curl_slist *rcpt = NULL;
    CURL *curl = curl_easy_init();
    CURLcode code = CURLE_OUT_OF_MEMORY;

    snprintf(from, sizeof(from), "<%s>", mail->from);
    snprintf(to, sizeof(to), "<%s>", row->to_address);
    rcpt = curl_slist_append(NULL, to);
    if (curl == NULL || rcpt == NULL)
        goto done;

    notify_smtp_url(cfg, mail->from, url, sizeof(url));
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    notify_smtp_options(curl, cfg, &up, errbuf);
    code = curl_easy_perform(curl);

done:
    if (code != CURLE_OK)
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "smtp: %s%s%.160s", curl_easy_strerror(code),
                 errbuf[0] != '\0' ? ": " : "", errbuf);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return code == CURLE_OK ? 0 : M360_EIO;
}

/* ---- Files --------------------------------------------------------------------------- */

/* Creates `dir` and its missing parents; the last one private to this user. */
static int notify_dir_make(const char *dir)
{
    char path[NOTIFY_PATH_MAX_BYTES];

    if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
        return M360_EINVAL;
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, NOTIFY_DIR_MODE) != 0 && errno != EEXIST)
            return M360_EIO;
        *p = '/';
    }
    if (mkdir(path, NOTIFY_DIR_MODE) != 0 && errno != EEXIST)
        return M360_EIO;
    return 0;
}

static int notify_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return M360_EIO;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Writes MAIL_DIR/<id>.eml through a hidden temporary file and a rename, so a reader never
 * sees half a message; a row sent again (after a crash) replaces its file, never doubles it.
 */
static int notify_file_send(const struct cfg *cfg, const struct notify_row *row,
                            const struct notify_mail *mail, char error[NOTIFY_ERROR_MAX_BYTES])
{
    char tmp[NOTIFY_PATH_MAX_BYTES];
    char path[NOTIFY_PATH_MAX_BYTES];
    int fd = -1;
    int rc;

    rc = notify_dir_make(cfg->mail_dir);
    if (rc != 0) {
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "mail dir: %s", strerror(errno));
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", cfg->mail_dir, row->id);
    snprintf(path, sizeof(path), "%s/%s.eml", cfg->mail_dir, row->id);

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, NOTIFY_FILE_MODE);
    rc = fd >= 0 ? notify_write_all(fd, mail->text, mail->len) : M360_EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = M360_EIO;
    if (fd >= 0 && close(fd) != 0)
        rc = M360_EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = M360_EIO;
    if (rc != 0) {
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "mail file: %s", strerror(errno));
        unlink(tmp);
    }
    return rc;
}

int notify_deliver(const struct cfg *cfg, const struct notify_row *row,
                   const struct notify_mail *mail, const atomic_bool *stopping,
                   char error[NOTIFY_ERROR_MAX_BYTES])
{
    if (strcmp(notify_transport_name(cfg), "smtp") == 0)
        return notify_smtp_send(cfg, row, mail, stopping, error);
    return notify_file_send(cfg, row, mail, error);
}
