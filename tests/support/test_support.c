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
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <sodium.h>

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

void tsupport_db_run(const char *url, const char *sql, int nparams, const char *const *params)
{
    PGconn *conn = tsupport_connect(url);
    PGresult *res = tsupport_query(conn, sql, nparams, params);
    ExecStatusType status = PQresultStatus(res);

    cr_assert(status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
}

void tsupport_user_role(const char *url, const char *email, const char *role)
{
    const char *params[] = {email, role};

    tsupport_db_run(url,
                    "UPDATE user_accounts SET role_id = (SELECT id FROM roles WHERE name = $2)"
                    " WHERE email = lower($1)",
                    2, params);
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

/* ---- Server launcher ------------------------------------------------------------------- */

long long tsupport_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *tsupport_file_read(const char *path)
{
    int fd = open(path, O_RDONLY);
    char *text;

    if (fd < 0)
        return strdup("");
    text = tsupport_read_all(fd);
    close(fd);
    return text != NULL ? text : strdup("");
}

static void tsupport_env_add(struct tsupport_server *srv, const char *name, const char *value)
{
    size_t n = 0;
    char *entry;

    while (srv->env[n] != NULL)
        n++;
    cr_assert(n < TSUPPORT_ENV_MAX, "too many environment entries");
    entry = malloc(strlen(name) + strlen(value) + 2);
    cr_assert_not_null(entry);
    sprintf(entry, "%s=%s", name, value);
    srv->env[n] = entry;
    srv->env[n + 1] = NULL;
}

void tsupport_server_prepare(struct tsupport_server *srv)
{
    char port[16];

    memset(srv, 0, sizeof(*srv));
    srv->pid = -1;
    tsupport_db_migrated(&srv->db);
    srv->var_dir = tsupport_tempdir();
    srv->port = tsupport_free_port();
    snprintf(port, sizeof(port), "%d", srv->port);
    snprintf(srv->log_path, sizeof(srv->log_path), "%s/server.log", srv->var_dir);

    tsupport_env_add(srv, "DATABASE_URL", srv->db.url);
    tsupport_env_add(srv, "MANAS360_VAR_DIR", srv->var_dir);
    tsupport_env_add(srv, "MIGRATIONS_DIR", tsupport_migrations_dir());
    tsupport_env_add(srv, "PORT", port);
    tsupport_env_add(srv, "JWT_SECRET", TSUPPORT_JWT_SECRET);
    tsupport_env_add(srv, "JWT_REFRESH_SECRET", TSUPPORT_JWT_REFRESH_SECRET);
    tsupport_env_add(srv, "BILLING_WEBHOOK_SECRET", TSUPPORT_WEBHOOK_SECRET);
}

void tsupport_server_envp(const struct tsupport_server *srv, const char *const *extra, char **out,
                          size_t max)
{
    size_t n = 0;

    for (size_t i = 0; srv->env[i] != NULL; i++) {
        cr_assert(n + 1 < max, "environment too large");
        out[n++] = srv->env[i];
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        cr_assert(n + 1 < max, "environment too large");
        out[n++] = (char *)extra[i];
    }
    out[n] = NULL;
}

pid_t tsupport_server_launch(struct tsupport_server *srv, const char *const *args,
                             const char *const *extra, const char *log_name, char *log_path,
                             size_t log_path_size)
{
    char *envp[2 * TSUPPORT_ENV_MAX + 1];
    char *argv[16];
    char path[600];
    size_t n = 0;
    pid_t pid;

    argv[n++] = (char *)tsupport_server_bin();
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        cr_assert(n + 1 < sizeof(argv) / sizeof(argv[0]), "too many arguments");
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    tsupport_server_envp(srv, extra, envp, sizeof(envp) / sizeof(envp[0]));
    snprintf(path, sizeof(path), "%s/%s.log", srv->var_dir, log_name);
    if (log_path != NULL)
        snprintf(log_path, log_path_size, "%s", path);

    pid = tsupport_spawn(argv, envp, path);
    cr_assert(pid > 0, "fork failed");
    return pid;
}

/* The part of a log worth showing: from the first sanitizer report, else the last lines. */
static const char *tsupport_log_excerpt(const char *log)
{
    static const char *const markers[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                          "runtime error:", "==ERROR"};
    size_t len = strlen(log);

    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        const char *found = strstr(log, markers[i]);
        if (found != NULL)
            return found;
    }
    return len > 3000 ? log + len - 3000 : log;
}

void tsupport_server_start(struct tsupport_server *srv, const char *const *extra)
{
    static const char *const args[] = {"serve", NULL};
    long long until;

    if (srv->var_dir == NULL)
        tsupport_server_prepare(srv);
    srv->pid =
        tsupport_server_launch(srv, args, extra, "server", srv->log_path, sizeof(srv->log_path));

    until = tsupport_now_ms() + TSUPPORT_START_TIMEOUT_MS;
    while (tsupport_now_ms() < until) {
        int status;

        if (tsupport_http(srv->port, "GET", "/healthz", NULL, NULL, NULL, NULL) == 200)
            return;
        if (waitpid(srv->pid, &status, WNOHANG) == srv->pid) {
            char *log = tsupport_file_read(srv->log_path);

            srv->pid = -1;
            cr_assert_fail("the server exited with %d before serving:\n%s",
                           tsupport_exit_code(status), tsupport_log_excerpt(log));
        }
        poll(NULL, 0, 50);
    }
    cr_assert_fail("the server did not answer /healthz within %d ms", TSUPPORT_START_TIMEOUT_MS);
}

int tsupport_process_stop(pid_t pid, const char *log_path)
{
    int code;

    cr_assert(pid > 0, "no process to stop");
    cr_expect_eq(kill(pid, SIGTERM), 0, "kill(SIGTERM) failed: %s", strerror(errno));
    code = tsupport_wait(pid, TSUPPORT_STOP_TIMEOUT_MS);
    if (code == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (code != 0) {
        char *log = tsupport_file_read(log_path);

        cr_expect_eq(code, 0, "%s did not exit cleanly on SIGTERM (exit %d%s):\n%s", log_path, code,
                     code == -1 ? ", still running: killed" : "", tsupport_log_excerpt(log));
        free(log);
    }
    return code;
}

int tsupport_server_stop(struct tsupport_server *srv)
{
    int code = tsupport_process_stop(srv->pid, srv->log_path);

    srv->pid = -1;
    return code;
}

void tsupport_server_destroy(struct tsupport_server *srv)
{
    char command[700];

    if (srv->pid > 0) {
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, NULL, 0);
        srv->pid = -1;
    }
    tsupport_db_destroy(&srv->db);
    if (srv->var_dir != NULL) {
        snprintf(command, sizeof(command), "rm -rf '%s'", srv->var_dir);
        cr_expect_eq(system(command), 0);
        free(srv->var_dir);
        srv->var_dir = NULL;
    }
    for (size_t i = 0; srv->env[i] != NULL; i++) {
        free(srv->env[i]);
        srv->env[i] = NULL;
    }
}

/* ---- JSON over HTTP -------------------------------------------------------------------- */

/* Feeds a request body to libcurl in small pieces, for chunked uploads. */
struct tsupport_upload {
    const char *data;
    size_t len;
    size_t sent;
};

static size_t tsupport_upload_read(char *buffer, size_t size, size_t nitems, void *arg)
{
    struct tsupport_upload *up = arg;
    size_t room = size * nitems;
    size_t n = up->len - up->sent;

    if (n > room)
        n = room;
    if (n > 4096)
        n = 4096;
    memcpy(buffer, up->data + up->sent, n);
    up->sent += n;
    return n;
}

static bool tsupport_has_header(const char *const *headers, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        if (strncasecmp(headers[i], name, len) == 0 && headers[i][len] == ':')
            return true;
    }
    return false;
}

static struct curl_slist *tsupport_request_headers(const struct tsupport_request *req)
{
    struct curl_slist *list = NULL;
    char auth[2600];

    if (req->body != NULL && !tsupport_has_header(req->headers, "Content-Type"))
        list = curl_slist_append(list, "Content-Type: application/json");
    if (req->chunked && !tsupport_has_header(req->headers, "Transfer-Encoding"))
        list = curl_slist_append(list, "Transfer-Encoding: chunked");
    if (req->token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", req->token);
        list = curl_slist_append(list, auth);
    }
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++)
        list = curl_slist_append(list, req->headers[i]);
    return list;
}

void tsupport_send(int port, const struct tsupport_request *req, struct tsupport_response *res)
{
    struct tsupport_buf body_buf = {NULL, 0};
    struct tsupport_buf head_buf = {NULL, 0};
    struct tsupport_upload upload = {req->body, 0, 0};
    CURL *curl = req->curl != NULL ? req->curl : curl_easy_init();
    struct curl_slist *list = tsupport_request_headers(req);
    char url[1024];
    CURLcode rc;

    memset(res, 0, sizeof(*res));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, req->path);
    if (req->curl != NULL)
        curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 5000L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, res->curl_error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, tsupport_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body_buf);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, tsupport_collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &head_buf);
    if (req->body != NULL) {
        upload.len = req->body_len > 0 ? req->body_len : strlen(req->body);
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        if (req->chunked) {
            curl_easy_setopt(curl, CURLOPT_READFUNCTION, tsupport_upload_read);
            curl_easy_setopt(curl, CURLOPT_READDATA, &upload);
        } else {
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)upload.len);
            curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
        }
    }
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);

    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
    else if (res->curl_error[0] == '\0')
        snprintf(res->curl_error, sizeof(res->curl_error), "%s", curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &res->seconds);
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &res->connects);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(list);
    if (req->curl == NULL)
        curl_easy_cleanup(curl);

    res->body = body_buf.data != NULL ? body_buf.data : strdup("");
    res->headers = head_buf.data != NULL ? head_buf.data : strdup("");
    res->json = json_loads(res->body, JSON_DECODE_ANY, NULL);
}

void tsupport_json(int port, const char *method, const char *path, const char *token,
                   const char *body, struct tsupport_response *res)
{
    struct tsupport_request req = {.method = method, .path = path, .token = token, .body = body};

    tsupport_send(port, &req, res);
}

void tsupport_response_cleanup(struct tsupport_response *res)
{
    free(res->body);
    free(res->headers);
    json_decref(res->json);
    memset(res, 0, sizeof(*res));
}

const char *tsupport_header(const struct tsupport_response *res, const char *name, char *out,
                            size_t size)
{
    const char *block = res->headers;
    const char *line;
    size_t len = strlen(name);

    /* Interim answers (100 Continue) come first: only the last block is the response. */
    for (const char *p = res->headers; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, "HTTP/", 5) == 0)
            block = p;
    }
    for (line = block; line != NULL && *line != '\0'; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
            const char *value = line + len + 1;
            size_t n;

            value += strspn(value, " \t");
            n = strcspn(value, "\r\n");
            if (n >= size)
                n = size - 1;
            memcpy(out, value, n);
            out[n] = '\0';
            return out;
        }
    }
    return NULL;
}

json_t *tsupport_get(const json_t *root, const char *path)
{
    char key[128];
    const json_t *node = root;

    while (node != NULL && *path != '\0') {
        size_t n = strcspn(path, ".");

        if (n >= sizeof(key) || !json_is_object(node))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        node = json_object_get(node, key);
        path += n + (path[n] == '.');
    }
    return (json_t *)node;
}

const char *tsupport_str(const json_t *root, const char *path)
{
    return json_string_value(tsupport_get(root, path));
}

void tsupport_expect_error_at(const struct tsupport_response *res, long status, const char *error,
                              const char *file, int line)
{
    cr_expect_eq(res->status, status, "%s:%d: status %ld, expected %ld: %s %s", file, line,
                 res->status, status, res->body, res->curl_error);
    cr_expect(json_is_false(tsupport_get(res->json, "success")),
              "%s:%d: expected \"success\": false in %s", file, line, res->body);
    cr_expect(tsupport_str(res->json, "error") != NULL &&
                  strcmp(tsupport_str(res->json, "error"), error) == 0,
              "%s:%d: expected error %s in %s", file, line, error, res->body);
    cr_expect(tsupport_str(res->json, "message") != NULL, "%s:%d: no message in %s", file, line,
              res->body);
}

/* ---- Accounts -------------------------------------------------------------------------- */

void tsupport_register(int port, const char *email, const char *password)
{
    struct tsupport_response res;
    json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *text = json_dumps(body, JSON_COMPACT);

    tsupport_json(port, "POST", "/api/auth/register", NULL, text, &res);
    cr_assert_eq(res.status, 201, "register %s: %ld %s %s", email, res.status, res.body,
                 res.curl_error);
    tsupport_response_cleanup(&res);
    free(text);
    json_decref(body);
}

long tsupport_login(int port, const char *email, const char *password, const char *user_agent,
                    struct tsupport_user *user)
{
    json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *text = json_dumps(body, JSON_COMPACT);
    char agent[512];
    const char *headers[] = {agent, NULL};
    struct tsupport_request req = {.method = "POST",
                                   .path = "/api/auth/login",
                                   .body = text,
                                   .headers = user_agent != NULL ? headers : NULL};
    struct tsupport_response res;
    long status;

    snprintf(agent, sizeof(agent), "User-Agent: %s", user_agent != NULL ? user_agent : "");
    tsupport_send(port, &req, &res);
    status = res.status;
    if (status == 200 && user != NULL) {
        const char *access = tsupport_str(res.json, "accessToken");
        const char *refresh = tsupport_str(res.json, "refreshToken");
        const char *id = tsupport_str(res.json, "user.id");

        cr_assert(access != NULL && refresh != NULL && id != NULL, "login answer: %s", res.body);
        snprintf(user->email, sizeof(user->email), "%s", email);
        snprintf(user->password, sizeof(user->password), "%s", password);
        snprintf(user->id, sizeof(user->id), "%s", id);
        snprintf(user->access, sizeof(user->access), "%s", access);
        snprintf(user->refresh, sizeof(user->refresh), "%s", refresh);
        cr_assert(tsupport_token_claim(access, "sid", user->session_id, sizeof(user->session_id)),
                  "no sid in the access token");
    }
    tsupport_response_cleanup(&res);
    free(text);
    json_decref(body);
    return status;
}

void tsupport_user_new(int port, const char *email, const char *password,
                       struct tsupport_user *user)
{
    long status;

    tsupport_register(port, email, password);
    status = tsupport_login(port, email, password, NULL, user);
    cr_assert_eq(status, 200, "login %s: %ld", email, status);
}

bool tsupport_token_claim(const char *token, const char *name, char *out, size_t size)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    unsigned char payload[2048];
    size_t payload_len = 0;
    json_t *claims;
    const char *value;
    bool found = false;

    if (dot2 == NULL ||
        sodium_base642bin(payload, sizeof(payload), dot1 + 1, (size_t)(dot2 - dot1 - 1), NULL,
                          &payload_len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return false;
    claims = json_loadb((const char *)payload, payload_len, 0, NULL);
    value = json_string_value(json_object_get(claims, name));
    if (value != NULL && strlen(value) < size) {
        memcpy(out, value, strlen(value) + 1);
        found = true;
    }
    json_decref(claims);
    return found;
}

bool tsupport_is_rfc3339_utc(const char *text)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i;

    if (text == NULL || strlen(text) < sizeof(shape))
        return false;
    for (i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? (text[i] < '0' || text[i] > '9') : text[i] != shape[i])
            return false;
    }
    if (text[i] == '.') {
        i++;
        if (text[i] < '0' || text[i] > '9')
            return false;
        while (text[i] >= '0' && text[i] <= '9')
            i++;
    }
    return strcmp(text + i, "Z") == 0;
}

bool tsupport_is_uuid(const char *text)
{
    if (text == NULL || strlen(text) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? text[i] != '-' : strchr("0123456789abcdefABCDEF", text[i]) == NULL)
            return false;
    }
    return true;
}
