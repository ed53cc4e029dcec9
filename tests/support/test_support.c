/* SPDX-License-Identifier: MIT */
/* Test support: throwaway databases, child processes and real HTTP requests. */
#include "test_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#define TSUPPORT_TEMPLATE_DB "manas360_template"

static const char *tsupport_pg_dir(void)
{
    const char *dir = getenv("MANAS360_TEST_PGDIR");

    if (dir == NULL || dir[0] == '\0')
        cr_assert_fail("MANAS360_TEST_PGDIR is not set: run the tests through ctest");
    return dir;
}

static void tsupport_url(char *out, size_t size, const char *dbname)
{
    snprintf(out, size, "postgresql:///%s?host=%s&user=manas360", dbname, tsupport_pg_dir());
}

PGconn *tsupport_connect(const char *url)
{
    PGconn *conn = PQconnectdb(url);

    if (PQstatus(conn) != CONNECTION_OK)
        cr_assert_fail("cannot connect to the test cluster: %s", PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, NULL, NULL);
    return conn;
}

PGresult *tsupport_query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

const char *tsupport_sqlstate(PGconn *conn, const char *sql, int nparams, const char *const *params,
                              char out[6])
{
    PGresult *res = tsupport_query(conn, sql, nparams, params);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    snprintf(out, 6, "%s", state != NULL ? state : "");
    PQclear(res);
    return out;
}

long tsupport_scalar(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = tsupport_query(conn, sql, nparams, params);
    long value;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
        cr_assert_fail("query failed: %s: %s", sql, PQresultErrorMessage(res));
    value = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return value;
}

static void tsupport_db_create(struct tsupport_db *db, const char *template_name)
{
    static int counter;
    char admin_url[512];
    char sql[256];
    PGconn *admin;
    PGresult *res;

    snprintf(db->name, sizeof(db->name), "t_%ld_%d_%ld", (long)getpid(), ++counter,
             (long)(time(NULL) % 100000));
    tsupport_url(admin_url, sizeof(admin_url), "postgres");
    tsupport_url(db->url, sizeof(db->url), db->name);

    /* Identifiers cannot be parameters; the name is built above from digits only. */
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", db->name,
             template_name);
    admin = tsupport_connect(admin_url);
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        cr_assert_fail("cannot create a test database: %s", PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(admin);
}

void tsupport_db_migrated(struct tsupport_db *db)
{
    tsupport_db_create(db, TSUPPORT_TEMPLATE_DB);
}

void tsupport_db_empty(struct tsupport_db *db)
{
    tsupport_db_create(db, "template0");
}

void tsupport_db_destroy(struct tsupport_db *db)
{
    char admin_url[512];
    char sql[256];
    PGconn *admin;

    if (db->name[0] == '\0')
        return;
    tsupport_url(admin_url, sizeof(admin_url), "postgres");
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    admin = tsupport_connect(admin_url);
    PQclear(PQexec(admin, sql));
    PQfinish(admin);
    db->name[0] = '\0';
}

const char *tsupport_migrations_dir(void)
{
    return MANAS360_SOURCE_DIR "/migrations";
}

const char *tsupport_server_bin(void)
{
    return MANAS360D_PATH;
}

char *tsupport_tempdir(void)
{
    char *path = strdup("/tmp/manas360-test.XXXXXX");

    if (path == NULL || mkdtemp(path) == NULL)
        cr_assert_fail("mkdtemp failed");
    return path;
}

int tsupport_free_port(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        cr_assert_fail("cannot find a free port");
    port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

/* Replaces the child's environment with PATH plus `envp`. */
static void tsupport_child_env(char *const envp[])
{
    const char *path = getenv("PATH");
    char *path_copy = strdup(path != NULL ? path : "/usr/bin:/bin");

    clearenv();
    setenv("PATH", path_copy, 1);
    free(path_copy);
    for (int i = 0; envp != NULL && envp[i] != NULL; i++)
        putenv(envp[i]);
}

static char *tsupport_read_all(int fd)
{
    size_t len = 0;
    size_t cap = 4096;
    char *buf = malloc(cap);
    ssize_t n;

    while (buf != NULL && (n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

static int tsupport_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int tsupport_run(char *const argv[], char *const envp[], char **out, char **err)
{
    char out_path[64];
    char err_path[64];
    int status = 0;
    pid_t pid;
    int fds[2];

    snprintf(out_path, sizeof(out_path), "/tmp/manas360-run-%ld.out", (long)getpid());
    snprintf(err_path, sizeof(err_path), "/tmp/manas360-run-%ld.err", (long)getpid());
    fds[0] = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    fds[1] = open(err_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

    pid = fork();
    if (pid == 0) {
        dup2(fds[0], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        tsupport_child_env(envp);
        execv(argv[0], argv);
        _exit(127);
    }
    waitpid(pid, &status, 0);

    lseek(fds[0], 0, SEEK_SET);
    lseek(fds[1], 0, SEEK_SET);
    if (out != NULL)
        *out = tsupport_read_all(fds[0]);
    if (err != NULL)
        *err = tsupport_read_all(fds[1]);
    close(fds[0]);
    close(fds[1]);
    unlink(out_path);
    unlink(err_path);
    return tsupport_exit_code(status);
}

pid_t tsupport_spawn(char *const argv[], char *const envp[], const char *log_path)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int null_fd = open("/dev/null", O_RDWR);

        dup2(null_fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        tsupport_child_env(envp);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int tsupport_wait(pid_t pid, int timeout_ms)
{
    int status = 0;

    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            return tsupport_exit_code(status);
        poll(NULL, 0, 10);
    }
    return -1;
}

struct tsupport_buf {
    char *data;
    size_t len;
};

static size_t tsupport_collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct tsupport_buf *buf = arg;
    size_t n = size * nmemb;
    char *grown = realloc(buf->data, buf->len + n + 1);

    if (grown == NULL)
        return 0;
    memcpy(grown + buf->len, ptr, n);
    buf->data = grown;
    buf->len += n;
    buf->data[buf->len] = '\0';
    return n;
}

long tsupport_http(int port, const char *method, const char *path, const char *const *headers,
                   const char *request_body, char **body, char **response_headers)
{
    struct tsupport_buf body_buf = {NULL, 0};
    struct tsupport_buf head_buf = {NULL, 0};
    struct curl_slist *list = NULL;
    CURL *curl = curl_easy_init();
    char url[512];
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    for (int i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, tsupport_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body_buf);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, tsupport_collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head_buf);
    if (request_body != NULL)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request_body);

    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);

    if (body != NULL)
        *body = body_buf.data != NULL ? body_buf.data : strdup("");
    else
        free(body_buf.data);
    if (response_headers != NULL)
        *response_headers = head_buf.data != NULL ? head_buf.data : strdup("");
    else
        free(head_buf.data);
    return status;
}

bool tsupport_wait_healthy(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if (tsupport_http(port, "GET", "/healthz", NULL, NULL, NULL, NULL) == 200)
            return true;
        poll(NULL, 0, 50);
    }
    return false;
}
