/* SPDX-License-Identifier: MIT */
/* The logger: line format, level filter, quoting, and masking of secrets. */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "manas360/err.h"
#include "manas360/log.h"

static char *sink_text;
static size_t sink_len;
static FILE *sink;

static void log_test_setup(void)
{
    sink = open_memstream(&sink_text, &sink_len);
    log_init(LOG_LEVEL_DEBUG, sink);
}

static void log_test_teardown(void)
{
    log_shutdown();
    fclose(sink);
    free(sink_text);
}

TestSuite(log, .init = log_test_setup, .fini = log_test_teardown);

static int evaluations;

static int counted(void)
{
    return ++evaluations;
}

Test(log, one_key_value_line_per_event)
{
    regex_t re;

    log_info("auth", "event=login_ok user_id=%d", 42);
    cr_assert_eq(regcomp(&re,
                         "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                         "level=info module=auth pid=[0-9]+ thread=[0-9]+ "
                         "event=login_ok user_id=42\n$",
                         REG_EXTENDED),
                 0);
    cr_expect_eq(regexec(&re, sink_text, 0, NULL, 0), 0, "got: %s", sink_text);
    regfree(&re);
}

Test(log, level_filter_skips_arguments)
{
    log_init(LOG_LEVEL_WARNING, sink);
    log_info("t", "event=skipped n=%d", counted());
    log_debug("t", "event=skipped n=%d", counted());
    cr_expect_eq(evaluations, 0);
    cr_expect_eq(sink_len, 0);

    log_warn("t", "event=kept n=%d", counted());
    log_err("t", "event=kept n=%d", counted());
    cr_expect_eq(evaluations, 2);
    cr_expect(strstr(sink_text, "level=warning") != NULL);
    cr_expect(strstr(sink_text, "level=err") != NULL);
}

Test(log, registered_secret_never_written)
{
    cr_assert_eq(log_secret_register("s3cr3t-jwt-signing-key"), 0);
    log_warn("t", "event=leak value=%s tail=x%sy", "s3cr3t-jwt-signing-key",
             "s3cr3t-jwt-signing-key");
    cr_expect(strstr(sink_text, "s3cr3t") == NULL, "got: %s", sink_text);
    cr_expect(strstr(sink_text, "value=*** tail=x***y") != NULL, "got: %s", sink_text);
}

Test(log, url_and_conninfo_passwords_masked)
{
    static const char *const cases[][2] = {
        {"url=postgresql://app:pa55word@db.internal:5432/m360",
         "url=postgresql://app:***@db.internal:5432/m360"},
        {"conn=\"host=db password=pa55word dbname=m\"", "conn=\"host=db password=*** dbname=m\""},
        {"conn=\"host=db password='pa 55' dbname=m\"", "conn=\"host=db password=*** dbname=m\""},
        {"url=postgresql:///m?host=/tmp&password=pa55word&user=u",
         "url=postgresql:///m?host=/tmp&password=***&user=u"},
        {"url=postgresql://app@db/m", "url=postgresql://app@db/m"},
        {"mypassword=visible", "mypassword=visible"},
    };
    char out[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        log_mask(out, sizeof(out), cases[i][0]);
        cr_expect_str_eq(out, cases[i][1]);
    }
}

Test(log, newline_cannot_forge_a_second_event)
{
    log_info("t", "event=x name=%s", "a\nts=0 level=err event=forged");
    cr_expect_eq(strchr(sink_text, '\n'), sink_text + sink_len - 1, "got: %s", sink_text);
}

Test(log, quoting)
{
    static const char *const cases[][2] = {
        {"plain", "plain"},
        {"two words", "\"two words\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"", "\"\""},
        {"k=v", "\"k=v\""},
        {"tab\there", "\"tab\\x09here\""},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_str_eq(log_quote(out, sizeof(out), cases[i][0]), cases[i][1]);
    log_quote(out, 8, "a very long value with spaces");
    cr_expect_lt(strlen(out), 8);
}

Test(log, level_names)
{
    enum log_level level;

    cr_expect_eq(log_level_parse("notice", &level), 0);
    cr_expect_eq(level, LOG_LEVEL_NOTICE);
    cr_expect_eq(log_level_parse("verbose", &level), M360_EINVAL);
}
