/* SPDX-License-Identifier: MIT */
/*
 * Rendering an outbox row as an RFC 5322 message: the headers (RFC 2047 encoded words for
 * anything that is not plain ASCII), and a multipart/alternative body with a text and an
 * HTML part. Parts are sent as 7bit when they are ASCII with short lines, which keeps a
 * link readable in the raw message, and as quoted-printable otherwise.
 */
#include "notify_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "manas360/err.h"
#include "manas360/notify.h"

#define NOTIFY_LINE_MAX_BYTES 998 /* RFC 5322: longest line, without its CRLF */
#define NOTIFY_TEXT_WRAP 76       /* text paragraphs are wrapped to this width */
#define NOTIFY_QP_WIDTH 75        /* quoted-printable lines, without the soft break's '=' */
#define NOTIFY_WORD_RAW_BYTES 45  /* an encoded word's text: 60 base64 characters */
#define NOTIFY_RANDOM_BYTES 16
#define NOTIFY_NAME_MAX_BYTES 512
#define NOTIFY_DATE_CHARS 10 /* "2026-12-03" of an RFC 3339 time */

/* A growing buffer. It may hold a token, so old memory is wiped when it moves. */
struct notify_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
};

/* The two bodies of one message, written side by side. */
struct notify_doc {
    struct notify_buf text;
    struct notify_buf html;
    struct notify_buf para; /* the text paragraph being written, wrapped when it ends */
};

/* What each template says. A paragraph's pieces are trusted text unless marked. */
struct notify_template {
    const char *name;
    const char *subject;
    const char *link_path; /* the page that takes the token; NULL when there is none */
    void (*write)(struct notify_doc *doc, const struct notify_row *row, const char *link);
};

static void notify_buf_reserve(struct notify_buf *b, size_t more)
{
    size_t cap = b->cap == 0 ? 1024 : b->cap;
    char *data;

    if (b->failed || b->len + more + 1 <= b->cap)
        return;
    while (cap < b->len + more + 1)
        cap *= 2;
    data = malloc(cap);
    if (data == NULL) {
        b->failed = true;
        return;
    }
    if (b->data != NULL) {
        memcpy(data, b->data, b->len);
        sodium_memzero(b->data, b->cap);
        free(b->data);
    }
    b->data = data;
    b->cap = cap;
}

static void notify_buf_put(struct notify_buf *b, const char *s, size_t n)
{
    notify_buf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void notify_buf_str(struct notify_buf *b, const char *s)
{
    notify_buf_put(b, s, strlen(s));
}

static void notify_buf_fmt(struct notify_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void notify_buf_fmt(struct notify_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(small)) {
        b->failed = true; /* only short, fixed-shape fields are formatted */
        return;
    }
    notify_buf_put(b, small, (size_t)n);
}

static void notify_buf_cleanup(struct notify_buf *b)
{
    if (b->data != NULL)
        sodium_memzero(b->data, b->cap);
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static void notify_hex_random(char *out, size_t bytes)
{
    unsigned char raw[NOTIFY_RANDOM_BYTES];

    randombytes_buf(raw, bytes);
    sodium_bin2hex(out, bytes * 2 + 1, raw, bytes);
}

/* ---- Headers ------------------------------------------------------------------------- */

static bool notify_printable_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7E)
            return false;
    }
    return true;
}

/* An address that can stand between angle brackets in a header and in the envelope. */
static bool notify_address_ok(const char *address)
{
    const char *at = strrchr(address, '@');
    size_t len = strlen(address);

    if (len == 0 || len >= NOTIFY_ADDRESS_MAX_BYTES || at == NULL || at == address || at[1] == '\0')
        return false;
    for (const char *p = address; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p > 0x7E || strchr("<>()[],;:\\\"", *p))
            return false;
    }
    return true;
}

/* The length of the longest prefix of `s` (`len` bytes) of at most `max` bytes that does not
 * split a character; never 0 while len > 0, so a caller always moves on. */
static size_t notify_utf8_cut(const char *s, size_t len, size_t max)
{
    size_t cut = len <= max ? len : max;

    while (cut > 1 && cut < len && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

/* Writes `text` as RFC 2047 encoded words, one per folded line after the first. */
static void notify_encoded_words(struct notify_buf *b, const char *text)
{
    char word[sodium_base64_ENCODED_LEN(NOTIFY_WORD_RAW_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    size_t len = strlen(text);
    size_t off = 0;

    while (off < len) {
        size_t n = notify_utf8_cut(text + off, len - off, NOTIFY_WORD_RAW_BYTES);

        sodium_bin2base64(word, sizeof(word), (const unsigned char *)text + off, n,
                          sodium_base64_VARIANT_ORIGINAL);
        notify_buf_str(b, off == 0 ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
        notify_buf_str(b, word);
        notify_buf_str(b, "?=");
        off += n;
    }
}

/* A display name: a quoted string when it is plain printable ASCII, else encoded words. */
static void notify_phrase(struct notify_buf *b, const char *name)
{
    if (!notify_printable_ascii(name)) {
        notify_encoded_words(b, name);
        return;
    }
    notify_buf_str(b, "\"");
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            notify_buf_str(b, "\\");
        notify_buf_put(b, p, 1);
    }
    notify_buf_str(b, "\"");
}

static void notify_header_mailbox(struct notify_buf *b, const char *field, const char *name,
                                  const char *address)
{
    notify_buf_str(b, field);
    notify_buf_str(b, ": ");
    if (name != NULL && name[0] != '\0') {
        notify_phrase(b, name);
        notify_buf_str(b, " ");
    }
    notify_buf_str(b, "<");
    notify_buf_str(b, address);
    notify_buf_str(b, ">\r\n");
}

/* Splits SMTP_FROM ("Name <address>", or a bare address) into its two parts. */
static int notify_from_parse(const char *from, char name[NOTIFY_NAME_MAX_BYTES],
                             char address[NOTIFY_ADDRESS_MAX_BYTES])
{
    const char *open = strchr(from, '<');
    const char *close = open != NULL ? strchr(open, '>') : NULL;
    size_t name_len;

    name[0] = '\0';
    if (open == NULL) {
        snprintf(address, NOTIFY_ADDRESS_MAX_BYTES, "%s", from);
        return notify_address_ok(address) ? 0 : M360_EINVAL;
    }
    if (close == NULL || (size_t)(close - open - 1) >= NOTIFY_ADDRESS_MAX_BYTES)
        return M360_EINVAL;
    snprintf(address, NOTIFY_ADDRESS_MAX_BYTES, "%.*s", (int)(close - open - 1), open + 1);

    /* The name without surrounding blanks and one pair of quotes. */
    while (*from == ' ' || *from == '\t')
        from++;
    name_len = (size_t)(open - from);
    while (name_len > 0 && (from[name_len - 1] == ' ' || from[name_len - 1] == '\t'))
        name_len--;
    if (name_len >= 2 && from[0] == '"' && from[name_len - 1] == '"') {
        from++;
        name_len -= 2;
    }
    if (name_len >= NOTIFY_NAME_MAX_BYTES)
        return M360_EINVAL;
    snprintf(name, NOTIFY_NAME_MAX_BYTES, "%.*s", (int)name_len, from);
    return notify_address_ok(address) ? 0 : M360_EINVAL;
}

/* RFC 5322 date-time in UTC ("Thu, 03 Dec 2026 15:56:38 +0000"), without the locale. */
static void notify_header_date(struct notify_buf *b, int64_t now)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)now;
    struct tm tm;

    gmtime_r(&t, &tm);
    notify_buf_fmt(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
                   tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                   tm.tm_sec);
}

/* ---- Bodies -------------------------------------------------------------------------- */

/* Appends one code point of `s` as an HTML character reference; returns the bytes read. */
static size_t notify_html_codepoint(struct notify_buf *b, const unsigned char *s)
{
    unsigned cp = 0xFFFD;
    size_t n = 1;

    if ((s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        n = 2;
    } else if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        n = 3;
    } else if ((s[0] & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
               (s[3] & 0xC0) == 0x80) {
        cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
             (s[3] & 0x3Fu);
        n = 4;
    }
    notify_buf_fmt(b, "&#%u;", cp);
    return n;
}

/* HTML-escapes `s`; characters outside printable ASCII become references, so the HTML
 * part stays ASCII whatever a user typed. */
static void notify_html_escape(struct notify_buf *b, const char *s)
{
    while (*s != '\0') {
        unsigned char c = (unsigned char)*s;

        if (c == '&')
            notify_buf_str(b, "&amp;");
        else if (c == '<')
            notify_buf_str(b, "&lt;");
        else if (c == '>')
            notify_buf_str(b, "&gt;");
        else if (c == '"')
            notify_buf_str(b, "&quot;");
        else if (c == '\'')
            notify_buf_str(b, "&#39;");
        else if (c >= 0x80) {
            s += notify_html_codepoint(b, (const unsigned char *)s);
            continue;
        } else if (c < 0x20 || c == 0x7F)
            notify_buf_str(b, " ");
        else
            notify_buf_put(b, s, 1);
        s++;
    }
}

static void notify_doc_para_begin(struct notify_doc *doc)
{
    doc->para.len = 0;
    notify_buf_str(&doc->para, "");
    notify_buf_str(&doc->html, "<p>");
}

/* Trusted text, the same in both parts. */
static void notify_doc_say(struct notify_doc *doc, const char *s)
{
    notify_buf_str(&doc->para, s);
    notify_html_escape(&doc->html, s);
}

/* Text a user or an administrator chose: plain in the text part, escaped in the HTML. */
static void notify_doc_quote(struct notify_doc *doc, const char *s)
{
    for (const char *p = s; *p != '\0'; p++)
        notify_buf_put(&doc->para, (*p == '\r' || *p == '\n') ? " " : p, 1);
    notify_html_escape(&doc->html, s);
}

/* Ends the paragraph: the text part gets it wrapped at spaces, never inside a word. */
static void notify_doc_para_end(struct notify_doc *doc)
{
    const char *p = doc->para.data != NULL ? doc->para.data : "";
    size_t col = 0;

    while (*p != '\0') {
        size_t word = strcspn(p, " ");

        if (col > 0 && col + 1 + word > NOTIFY_TEXT_WRAP) {
            notify_buf_str(&doc->text, "\r\n");
            col = 0;
        } else if (col > 0) {
            notify_buf_str(&doc->text, " ");
            col++;
        }
        notify_buf_put(&doc->text, p, word);
        col += word;
        p += word;
        p += strspn(p, " ");
    }
    notify_buf_str(&doc->text, "\r\n\r\n");
    notify_buf_str(&doc->html, "</p>\r\n");
}

static void notify_doc_para(struct notify_doc *doc, const char *s)
{
    notify_doc_para_begin(doc);
    notify_doc_say(doc, s);
    notify_doc_para_end(doc);
}

/* The link on a line of its own in the text, a link and its address in the HTML. */
static void notify_doc_link(struct notify_doc *doc, const char *label, const char *url)
{
    notify_buf_str(&doc->text, url);
    notify_buf_str(&doc->text, "\r\n\r\n");
    notify_buf_str(&doc->html, "<p><a href=\"");
    notify_html_escape(&doc->html, url);
    notify_buf_str(&doc->html, "\">");
    notify_html_escape(&doc->html, label);
    notify_buf_str(&doc->html, "</a></p>\r\n<p>");
    notify_html_escape(&doc->html, url);
    notify_buf_str(&doc->html, "</p>\r\n");
}

/* "Hello Ana," in the HTML; the text part greets nobody by name, so it stays ASCII and
 * its links stay readable in the raw message. */
static void notify_doc_greet(struct notify_doc *doc, const struct notify_row *row)
{
    notify_buf_str(&doc->text, "Hello,\r\n\r\n");
    notify_buf_str(&doc->html, "<p>Hello");
    if (row->to_name != NULL && row->to_name[0] != '\0') {
        notify_buf_str(&doc->html, " ");
        notify_html_escape(&doc->html, row->to_name);
    }
    notify_buf_str(&doc->html, ",</p>\r\n");
}

static const char *notify_payload_str(const struct notify_row *row, const char *key)
{
    const char *value = json_string_value(json_object_get(row->payload, key));

    return value != NULL && value[0] != '\0' ? value : NULL;
}

static void notify_write_verify(struct notify_doc *doc, const struct notify_row *row,
                                const char *link)
{
    notify_doc_greet(doc, row);
    notify_doc_para(doc, "Welcome to MANAS360. Please confirm your email address by opening "
                         "this link:");
    notify_doc_link(doc, "Confirm my email address", link);
    notify_doc_para(doc, "The link works once and expires in 24 hours. If you did not create "
                         "an account, you can ignore this message.");
}

static void notify_write_reset(struct notify_doc *doc, const struct notify_row *row,
                               const char *link)
{
    notify_doc_greet(doc, row);
    notify_doc_para(doc, "Someone asked to reset the password of your MANAS360 account. To "
                         "choose a new password, open this link:");
    notify_doc_link(doc, "Choose a new password", link);
    notify_doc_para(doc, "The link works once and expires in 1 hour. Setting a new password "
                         "signs you out everywhere. If you did not ask for this, you can "
                         "ignore this message: your password stays as it is.");
}

/* "Your subscription to the Pro plan ends on 2026-12-03." with what the payload knows. */
static void notify_write_subscription(struct notify_doc *doc, const struct notify_row *row,
                                      const char *link, bool expired)
{
    const char *plan = notify_payload_str(row, "planName");
    const char *ends = notify_payload_str(row, "endsAt");
    char date[NOTIFY_DATE_CHARS + 1];

    notify_doc_greet(doc, row);
    notify_doc_para_begin(doc);
    notify_doc_say(doc, "Your MANAS360 subscription");
    if (plan != NULL) {
        notify_doc_say(doc, " to the ");
        notify_doc_quote(doc, plan);
        notify_doc_say(doc, " plan");
    }
    notify_doc_say(doc, expired ? " has ended" : " ends soon");
    if (ends != NULL) {
        snprintf(date, sizeof(date), "%s", ends);
        notify_doc_say(doc, expired ? " (on " : ", on ");
        notify_doc_quote(doc, date);
        notify_doc_say(doc, expired ? " UTC)" : " UTC");
    }
    notify_doc_say(doc, ".");
    notify_doc_para_end(doc);
    notify_doc_para(doc, expired ? "Features of your plan are no longer available. Renew at "
                                   "any time to get them back."
                                 : "Renew it to keep the features of your plan.");
    notify_doc_link(doc, "Open MANAS360", link);
}

static void notify_write_expiring(struct notify_doc *doc, const struct notify_row *row,
                                  const char *link)
{
    notify_write_subscription(doc, row, link, false);
}

static void notify_write_expired(struct notify_doc *doc, const struct notify_row *row,
                                 const char *link)
{
    notify_write_subscription(doc, row, link, true);
}

static const struct notify_template notify_templates[] = {
    {NOTIFY_VERIFY_EMAIL, "Confirm your email address", "/verify-email", notify_write_verify},
    {NOTIFY_PASSWORD_RESET, "Reset your MANAS360 password", "/reset-password", notify_write_reset},
    {NOTIFY_SUBSCRIPTION_EXPIRING, "Your MANAS360 subscription ends soon", NULL,
     notify_write_expiring},
    {NOTIFY_SUBSCRIPTION_EXPIRED, "Your MANAS360 subscription has ended", NULL,
     notify_write_expired},
};

static const struct notify_template *notify_template_find(const char *name)
{
    for (size_t i = 0; i < sizeof(notify_templates) / sizeof(notify_templates[0]); i++) {
        if (strcmp(notify_templates[i].name, name) == 0)
            return &notify_templates[i];
    }
    return NULL;
}

/* ---- The message --------------------------------------------------------------------- */

/* True when `s` can go as 7bit: ASCII, CRLF line ends only, no line too long. */
static bool notify_7bit_ok(const char *s, size_t len)
{
    size_t col = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\r' && i + 1 < len && s[i + 1] == '\n') {
            col = 0;
            i++;
        } else if (c >= 0x80 || c == '\r' || c == '\n' || c == 0 || ++col > NOTIFY_LINE_MAX_BYTES)
            return false;
    }
    return true;
}

/* Quoted-printable (RFC 2045 6.7) of CRLF-separated lines, with soft breaks. */
static void notify_qp(struct notify_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool line_end = i + 1 == len || (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n');
        char token[4] = {(char)c, '\0', '\0', '\0'};

        if (c == '\r' && i + 1 < len && s[i + 1] == '\n') {
            notify_buf_str(b, "\r\n");
            col = 0;
            i++;
            continue;
        }
        if (c == '=' || c < 0x20 || c > 0x7E || ((c == ' ' || c == '\t') && line_end) ||
            c == '\t') {
            token[0] = '=';
            token[1] = hex[c >> 4];
            token[2] = hex[c & 0x0F];
        }
        if (col + strlen(token) > NOTIFY_QP_WIDTH) {
            notify_buf_str(b, "=\r\n");
            col = 0;
        }
        notify_buf_str(b, token);
        col += strlen(token);
    }
}

static void notify_part(struct notify_buf *b, const char *boundary, const char *type,
                        const struct notify_buf *content)
{
    bool plain = notify_7bit_ok(content->data, content->len);

    notify_buf_fmt(b, "--%s\r\n", boundary);
    notify_buf_fmt(b, "Content-Type: %s; charset=UTF-8\r\n", type);
    notify_buf_fmt(b, "Content-Transfer-Encoding: %s\r\n\r\n", plain ? "7bit" : "quoted-printable");
    if (plain)
        notify_buf_put(b, content->data, content->len);
    else
        notify_qp(b, content->data, content->len);
    if (b->len < 2 || memcmp(b->data + b->len - 2, "\r\n", 2) != 0)
        notify_buf_str(b, "\r\n");
}

static void notify_headers(struct notify_buf *b, const struct notify_row *row, const char *subject,
                           int64_t now, const char *from_name, const char *from_address,
                           const char *boundary)
{
    char id[NOTIFY_RANDOM_BYTES * 2 + 1];

    notify_hex_random(id, NOTIFY_RANDOM_BYTES);
    notify_header_date(b, now);
    notify_buf_fmt(b, "Message-ID: <%s@", id);
    notify_buf_str(b, strrchr(from_address, '@') + 1);
    notify_buf_str(b, ">\r\n");
    notify_header_mailbox(b, "From", from_name, from_address);
    notify_header_mailbox(b, "To", row->to_name, row->to_address);
    notify_buf_str(b, "Subject: ");
    if (notify_printable_ascii(subject))
        notify_buf_str(b, subject);
    else
        notify_encoded_words(b, subject);
    notify_buf_str(b, "\r\nMIME-Version: 1.0\r\n");
    notify_buf_fmt(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n", boundary);
    notify_buf_str(b, "Auto-Submitted: auto-generated\r\n\r\n");
}

/* The address of the link a template carries: APP_BASE_URL/page?token=TOKEN. */
static int notify_link(const struct cfg *cfg, const struct notify_template *tpl,
                       const struct notify_row *row, struct notify_buf *link,
                       char error[NOTIFY_ERROR_MAX_BYTES])
{
    const char *token = notify_payload_str(row, "token");

    if (tpl->link_path == NULL) {
        notify_buf_str(link, cfg->app_base_url);
        return 0;
    }
    /* The token is ours (base64url): anything else in it was not written by this server. */
    if (token == NULL || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_") != strlen(token)) {
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "payload has no usable token");
        return M360_EINVAL;
    }
    notify_buf_str(link, cfg->app_base_url);
    notify_buf_str(link, tpl->link_path);
    notify_buf_str(link, "?token=");
    notify_buf_str(link, token);
    return 0;
}

int notify_render(const struct cfg *cfg, const struct notify_row *row, int64_t now,
                  struct notify_mail *mail, char error[NOTIFY_ERROR_MAX_BYTES])
{
    const struct notify_template *tpl = notify_template_find(row->template);
    char from_name[NOTIFY_NAME_MAX_BYTES];
    char boundary[NOTIFY_RANDOM_BYTES * 2 + 8] = "=_m360_";
    struct notify_doc doc = {0};
    struct notify_buf link = {0};
    struct notify_buf msg = {0};
    int rc = M360_EINVAL;

    if (tpl == NULL) {
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "unknown template");
        goto done;
    }
    if (!notify_address_ok(row->to_address)) {
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "recipient address unfit for a header");
        goto done;
    }
    if (notify_from_parse(cfg->smtp_from, from_name, mail->from) != 0) {
        snprintf(error, NOTIFY_ERROR_MAX_BYTES, "SMTP_FROM holds no usable address");
        goto done;
    }
    rc = notify_link(cfg, tpl, row, &link, error);
    if (rc != 0)
        goto done;

    notify_buf_str(&doc.html, "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>");
    notify_html_escape(&doc.html, tpl->subject);
    notify_buf_str(&doc.html, "</title></head>\r\n<body>\r\n");
    tpl->write(&doc, row, link.data);
    notify_buf_str(&doc.text, "-- \r\nMANAS360\r\n");
    notify_buf_str(&doc.html, "<p>MANAS360</p>\r\n</body></html>\r\n");
    notify_hex_random(boundary + strlen(boundary), NOTIFY_RANDOM_BYTES);
    notify_headers(&msg, row, tpl->subject, now, from_name, mail->from, boundary);
    notify_part(&msg, boundary, "text/plain", &doc.text);
    notify_part(&msg, boundary, "text/html", &doc.html);
    notify_buf_fmt(&msg, "--%s--\r\n", boundary);

    rc = M360_ENOMEM;
    if (!msg.failed && !doc.text.failed && !doc.html.failed && !doc.para.failed && !link.failed) {
        mail->text = msg.data;
        mail->len = msg.len;
        msg.data = NULL;
        rc = 0;
    }

done:
    notify_buf_cleanup(&msg);
    notify_buf_cleanup(&link);
    notify_buf_cleanup(&doc.text);
    notify_buf_cleanup(&doc.html);
    notify_buf_cleanup(&doc.para);
    return rc;
}
