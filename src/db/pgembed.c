/*
 * Embedded PostgreSQL management: initdb on first use, start on a private
 * Unix socket, adopt a postmaster that is already serving the same cluster,
 * clear a stale postmaster.pid left by a crash, drop privileges to an
 * unprivileged system user when run as root, and fast shutdown on exit.
 */
#include "db/pgembed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* The system user PostgreSQL runs as when campaignd runs as root: postgres
 * refuses to run as root, and a dedicated unprivileged user limits what a
 * compromised database process can touch. */
static const char PG_OS_USER[] = "postgres";

extern char **environ;

/* Set while the supervisor is being stopped: waits for readiness give up. */
static atomic_bool supervisor_stopping;

static bool find_bindir(pgembed_t *pg)
{
    const char *env = getenv("POSTGRES_BIN_DIR");
    const char *candidates[] = {env, "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
                                "/usr/lib/postgresql/17/bin", "/usr/local/pgsql/bin"};
    for (size_t i = 0; i < CD_ARRAY_LEN(candidates); i++) {
        if (!candidates[i])
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/postgres", candidates[i]);
        if (access(path, X_OK) == 0) {
            snprintf(pg->bindir, sizeof(pg->bindir), "%s", candidates[i]);
            return true;
        }
    }
    log_error("PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin). "
              "Install them with: apt-get install postgresql-15, or set POSTGRES_BIN_DIR, or "
              "use an external server with DATABASE_URL.");
    return false;
}

static bool mkdir_p(const char *path, mode_t mode)
{
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return false;
            *p = '/';
        }
    }
    return mkdir(tmp, mode) == 0 || errno == EEXIST;
}

/* Runs argv as the database OS user (when root), stdout/stderr to log_path.
 * Returns the child's pid, or -1. */
static pid_t spawn(const pgembed_t *pg, char *const argv[], const char *log_path, bool new_pgrp)
{
    (void)pg;
    struct passwd *pw = geteuid() == 0 ? getpwnam(PG_OS_USER) : NULL;
    if (geteuid() == 0 && !pw) {
        log_error("running as root, but there is no '%s' system user to run PostgreSQL as; "
                  "install postgresql-15 (it creates one) or run campaignd as a normal user",
                  PG_OS_USER);
        return -1;
    }
    uid_t uid = pw ? pw->pw_uid : 0;
    gid_t gid = pw ? pw->pw_gid : 0;
    /* The child's environment is made here: after fork in a process with
     * threads (the supervisor restarts PostgreSQL while serving) the child may
     * only call async-signal-safe functions, and setenv is not one. */
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof(*envp));
    if (!envp)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "PGDATA=", 7) != 0 && strncmp(environ[i], "LC_ALL=", 7) != 0)
            envp[k++] = environ[i];
    envp[k++] = "LC_ALL=C.UTF-8";
    envp[k] = NULL;
    /* the child only execs or _exits: per-thread state of the parent (smtp.c's
     * random pool, say) is never used twice */
    pid_t pid = fork();
    if (pid != 0) {
        free(envp);
        return pid;
    }
    /* child */
    if (new_pgrp)
        setpgid(0, 0); /* Ctrl-C in the terminal reaches campaignd, which stops us in order */
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (pw && fchown(fd, pw->pw_uid, pw->pw_gid) != 0)
            _exit(126);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, STDIN_FILENO);
    /* PostgreSQL must not inherit campaignd's sockets (the HTTP listener, client
     * and database connections) when it is started while serving. */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
        for (int fdn = 3; fdn < 65536; fdn++)
            close(fdn);
    if (pw) {
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
            _exit(126);
    }
    execve(argv[0], argv, envp);
    _exit(127);
}

static int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool chown_to_pg_user(const char *path)
{
    if (geteuid() != 0)
        return true;
    struct passwd *pw = getpwnam(PG_OS_USER);
    return pw && chown(path, pw->pw_uid, pw->pw_gid) == 0;
}

/* When root, checks that the PostgreSQL user can reach the data directory
 * (every parent must be searchable by it), so a data dir under /root fails
 * with advice instead of an obscure initdb error. */
static bool pg_user_can_reach(const char *dir)
{
    if (geteuid() != 0)
        return true;
    struct passwd *pw = getpwnam(PG_OS_USER);
    if (!pw)
        return true;    /* spawn() reports the missing user */
    pid_t pid = fork(); /* the child only _exits (see spawn) */
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
            _exit(2);
        _exit(access(dir, X_OK) == 0 ? 0 : 1);
    }
    if (pid < 0)
        return true;
    if (wait_child(pid) == 0)
        return true;
    log_error("PostgreSQL runs as the '%s' user, which cannot reach %s: every directory above "
              "it must be searchable by others (chmod o+x), or set CAMPAIGND_DATA_DIR to a "
              "place such as /var/lib/campaignd",
              PG_OS_USER, dir);
    return false;
}

/* The path of a PostgreSQL program and of the log its output goes to
 * (<data dir>/<tool>.log). */
static void tool_paths(const pgembed_t *pg, const char *tool, char *exe, size_t exelen, char *logp,
                       size_t loglen)
{
    snprintf(exe, exelen, "%s/%s", pg->bindir, tool);
    snprintf(logp, loglen, "%s/%s.log", pg->data_dir, tool);
}

static bool run_initdb(pgembed_t *pg)
{
    log_info("creating the embedded PostgreSQL cluster in %s (first run)", pg->pgdata);
    char initdb[600], logp[1200];
    tool_paths(pg, "initdb", initdb, sizeof(initdb), logp, sizeof(logp));
    char *argv[] = {initdb,
                    "-D",
                    pg->pgdata,
                    "-U",
                    PGEMBED_SUPERUSER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                    NULL};
    pid_t pid = spawn(pg, argv, logp, false);
    if (pid < 0 || wait_child(pid) != 0) {
        log_error("initdb failed; its output is in %s", logp);
        return false;
    }
    /* Only the local socket, only trust on it: the socket directory is mode
     * 0700, so filesystem permissions are the access control. */
    char hba[1200];
    snprintf(hba, sizeof(hba), "%s/pg_hba.conf", pg->pgdata);
    FILE *f = fopen(hba, "w");
    if (!f) {
        log_error("cannot write %s: %s", hba, strerror(errno));
        return false;
    }
    fprintf(f, "# written by campaignd: Unix socket only, guarded by directory permissions\n"
               "local all all trust\n");
    fclose(f);
    return chown_to_pg_user(hba);
}

/* Reads the pid in postmaster.pid; 0 if none. */
static pid_t read_pidfile(const pgembed_t *pg)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/postmaster.pid", pg->pgdata);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[64] = "";
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    long n = strtol(line, NULL, 10);
    return n > 0 && n < INT_MAX ? (pid_t)n : 0;
}

/* Whether pid is a running postgres whose data directory is ours. */
static bool pid_is_our_postmaster(const pgembed_t *pg, pid_t pid)
{
    char path[64], cmd[4096];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    cmd[n] = '\0';
    bool is_pg = strstr(cmd, "postgres") != NULL;
    bool ours = false;
    for (size_t i = 0; i < n; i += strlen(cmd + i) + 1)
        if (strcmp(cmd + i, pg->pgdata) == 0)
            ours = true;
    return is_pg && ours;
}

static bool ping(const pgembed_t *pg)
{
    char ci[1400];
    pgembed_conninfo(pg, PGEMBED_SUPERUSER, ci, sizeof(ci));
    char ci2[1500];
    snprintf(ci2, sizeof(ci2), "%s connect_timeout=2", ci);
    return PQping(ci2) == PQPING_OK;
}

static bool wait_ready(const pgembed_t *pg, pid_t child, int seconds)
{
    for (int i = 0; i < seconds * 10 && !atomic_load(&supervisor_stopping); i++) {
        if (ping(pg))
            return true;
        if (child > 0) {
            int st;
            if (waitpid(child, &st, WNOHANG) == child)
                return false;
        }
        usleep(100000);
    }
    return false;
}

static bool ensure_database(const pgembed_t *pg)
{
    char ci[1400];
    snprintf(ci, sizeof(ci), "host=%s port=%d dbname=postgres user=%s", pg->sockdir, PGEMBED_PORT,
             PGEMBED_SUPERUSER);
    PGconn *c = PQconnectdb(ci);
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, "select 1 from pg_database where datname = 'campaignd'");
        bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        PQclear(r);
        if (!exists) {
            r = PQexec(c, "create database campaignd");
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!ok)
                log_error("cannot create database campaignd: %s", PQresultErrorMessage(r));
            PQclear(r);
        }
    } else {
        log_error("cannot connect to the embedded PostgreSQL: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return ok;
}

/* The WAL level the postmaster starts with: `replica`, PostgreSQL's
 * default, unless the cluster holds a
 * replication slot: campaignd started clusters at `logical` until December
 * 2026, and a logical slot made on one then (pg_recvlogical through the
 * socket) would keep the server from starting below that level. Nothing in
 * campaignd decodes WAL (realtime reads trigger-written rows:
 * docs/architecture.md), and at `logical` an update on the same page logs
 * the whole new row instead of the part that changed (bench/RESULTS.md,
 * "Session 15": the WAL per message sent). */
static const char *wal_level_option(const pgembed_t *pg)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/pg_replslot", pg->pgdata);
    DIR *d = opendir(path);
    bool slot = false;
    if (d) {
        for (struct dirent *e; !slot && (e = readdir(d)) != NULL;)
            slot = e->d_name[0] != '.';
        closedir(d);
    }
    if (slot)
        log_info("the cluster has a replication slot (%s): WAL kept at the logical level; drop "
                 "the slot if nothing reads it (docs/operations.md)",
                 path);
    return slot ? "wal_level=logical" : "wal_level=replica";
}

/* Starts a postmaster on the cluster (removing a postmaster.pid left by a crash
 * first) and waits until it accepts connections; sets pg->pid. */
static bool start_postmaster(pgembed_t *pg)
{
    pid_t old = read_pidfile(pg);
    if (old && !pid_is_our_postmaster(pg, old)) {
        /* Left behind by a crash: the pid is dead or belongs to someone else. */
        char path[1200];
        snprintf(path, sizeof(path), "%s/postmaster.pid", pg->pgdata);
        log_warn("removing stale %s (pid %d is not running this cluster)", path, (int)old);
        unlink(path);
    }

    char postgres[600], logp[1200], sockopt[1200];
    tool_paths(pg, "postgres", postgres, sizeof(postgres), logp, sizeof(logp));
    snprintf(sockopt, sizeof(sockopt), "unix_socket_directories=%s", pg->sockdir);
    char *argv[] = {postgres,
                    "-D",
                    pg->pgdata,
                    "-c",
                    "listen_addresses=",
                    "-c",
                    sockopt,
                    "-c",
                    "unix_socket_permissions=0700",
                    "-c",
                    "port=5432",
                    "-c",
                    "max_connections=300",
                    "-c",
                    (char *)wal_level_option(pg),
                    "-c",
                    "max_replication_slots=16",
                    "-c",
                    "max_wal_senders=16",
                    "-c",
                    "shared_preload_libraries=",
                    "-c",
                    "logging_collector=off",
                    NULL};
    pid_t pid = spawn(pg, argv, logp, true);
    if (pid < 0)
        return false;
    if (!wait_ready(pg, pid, 60)) {
        log_error("the embedded PostgreSQL did not start; see %s", logp);
        kill(pid, SIGQUIT);
        wait_child(pid);
        return false;
    }
    pg->pid = pid;
    return true;
}

/* Creates and resolves the data directory and its socket directory, finds
 * PostgreSQL's programs, and checks that the PostgreSQL user can reach them.
 * Fills pg's paths; returns false after logging why. */
static bool prepare_dirs(pgembed_t *pg, const char *data_dir)
{
    memset(pg, 0, sizeof(*pg));
    if (!mkdir_p(data_dir, 0711)) {
        log_error("cannot create the data directory %s: %s (set CAMPAIGND_DATA_DIR)", data_dir,
                  strerror(errno));
        return false;
    }
    char abs[PATH_MAX];
    if (!realpath(data_dir, abs) || strlen(abs) >= sizeof(pg->data_dir)) {
        log_error("cannot resolve the data directory %s", data_dir);
        return false;
    }
    snprintf(pg->data_dir, sizeof(pg->data_dir), "%s", abs);
    snprintf(pg->pgdata, sizeof(pg->pgdata), "%s/pg", abs);
    snprintf(pg->sockdir, sizeof(pg->sockdir), "%s/run", abs);
    struct sockaddr_un sun;
    if (strlen(pg->sockdir) + sizeof("/.s.PGSQL.5432") > sizeof(sun.sun_path)) {
        log_error("the data directory path %s is too long for a Unix socket (at most %zu "
                  "bytes); choose a shorter CAMPAIGND_DATA_DIR",
                  abs, sizeof(sun.sun_path) - sizeof("/run/.s.PGSQL.5432"));
        return false;
    }
    if (!find_bindir(pg))
        return false;
    /* The PostgreSQL user must be able to pass through the data dir. */
    if (geteuid() == 0 && chmod(abs, 0711) != 0)
        log_warn("cannot chmod %s: %s", abs, strerror(errno));
    if (!pg_user_can_reach(abs))
        return false;
    if (!mkdir_p(pg->sockdir, 0700) || !chown_to_pg_user(pg->sockdir) ||
        chmod(pg->sockdir, 0700) != 0) {
        log_error("cannot prepare %s: %s", pg->sockdir, strerror(errno));
        return false;
    }
    return true;
}

/* Opens data_dir/<name> for flock(2), close-on-exec (the postmaster must not
 * inherit it); -1 after logging. */
static int open_lock(const pgembed_t *pg, const char *name)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", pg->data_dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        log_error("cannot open %s: %s", path, strerror(errno));
    return fd;
}

bool pgembed_start(pgembed_t *pg, const char *data_dir)
{
    pg->users_fd = -1;
    pg->sup_fd = -1;
    if (!prepare_dirs(pg, data_dir))
        return false;
    /* Shared while we use the cluster; waits while a last user stops it. */
    pg->users_fd = open_lock(pg, "campaignd.lock");
    if (pg->users_fd < 0 || flock(pg->users_fd, LOCK_SH) != 0)
        return false;

    char version_file[1200];
    snprintf(version_file, sizeof(version_file), "%s/PG_VERSION", pg->pgdata);
    if (access(version_file, F_OK) != 0) {
        if (!mkdir_p(pg->pgdata, 0700) || !chown_to_pg_user(pg->pgdata)) {
            log_error("cannot create %s: %s", pg->pgdata, strerror(errno));
            return false;
        }
        if (!run_initdb(pg))
            return false;
    }

    pid_t old = read_pidfile(pg);
    if (old && pid_is_our_postmaster(pg, old) && wait_ready(pg, 0, 30)) {
        log_info("using the embedded PostgreSQL already running (pid %d)", (int)old);
        pg->pid = old;
        pg->owned = false;
        return ensure_database(pg);
    }
    if (!start_postmaster(pg))
        return false;
    pg->owned = true;
    log_info("embedded PostgreSQL started (pid %d, socket in %s)", (int)pg->pid, pg->sockdir);
    return ensure_database(pg);
}

void pgembed_conninfo(const pgembed_t *pg, const char *user, char *out, size_t outlen)
{
    snprintf(out, outlen, "host=%s port=%d dbname=%s user=%s application_name=campaignd",
             pg->sockdir, PGEMBED_PORT, PGEMBED_DBNAME, user);
}

void pgembed_url(const pgembed_t *pg, char *out, size_t outlen)
{
    /* The socket directory goes in the host query parameter, percent-encoded. */
    char enc[3300];
    size_t w = 0;
    for (const char *p = pg->sockdir; *p && w + 4 < sizeof(enc); p++) {
        unsigned char ch = (unsigned char)*p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            enc[w++] = (char)ch;
        } else {
            snprintf(enc + w, 4, "%%%02X", ch);
            w += 3;
        }
    }
    enc[w] = '\0';
    snprintf(out, outlen, "postgresql://%s@/%s?host=%s&port=%d", PGEMBED_SUPERUSER, PGEMBED_DBNAME,
             enc, PGEMBED_PORT);
}

/* ------------------------------------------------------------ supervision */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running;
    bool stop;
    pgembed_t *pg;
} sup = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Waits ms or until the supervisor is told to stop; returns false when it is. */
static bool sup_sleep(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sup.mu);
    while (!sup.stop && pthread_cond_timedwait(&sup.cv, &sup.mu, &until) == 0) {
    }
    bool go_on = !sup.stop;
    pthread_mutex_unlock(&sup.mu);
    return go_on;
}

typedef enum { PM_RUNNING, PM_STOPPED, PM_CRASHED } pm_state_t;

/* Whether the postmaster pg->pid still runs, was stopped on purpose (a clean
 * shutdown: exit status 0, or postmaster.pid removed) or died (a signal, a
 * non-zero exit, or a postmaster.pid left behind); how it ended goes into how.
 * Our child is reaped here; an adopted one is watched by pid. */
static pm_state_t postmaster_state(const pgembed_t *pg, char *how, size_t howlen)
{
    int st;
    pid_t r = waitpid(pg->pid, &st, WNOHANG);
    if (r == 0)
        return PM_RUNNING;
    if (r == pg->pid) {
        if (WIFSIGNALED(st)) {
            snprintf(how, howlen, "killed by signal %d", WTERMSIG(st));
            return PM_CRASHED;
        }
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        snprintf(how, howlen, "exited with status %d", code);
        return code == 0 ? PM_STOPPED : PM_CRASHED;
    }
    if (kill(pg->pid, 0) == 0 && pid_is_our_postmaster(pg, pg->pid))
        return PM_RUNNING;
    bool pidfile = read_pidfile(pg) == pg->pid;
    snprintf(how, howlen, "no longer running%s", pidfile ? ", postmaster.pid left behind" : "");
    return pidfile ? PM_CRASHED : PM_STOPPED;
}

/* Restarts the cluster after a crash, with back-off; false when told to stop. */
static bool restart(pgembed_t *pg)
{
    int backoff = 500;
    for (int attempt = 1;; attempt++) {
        /* someone (an operator's pg_ctl) may have started it already */
        pid_t other = read_pidfile(pg);
        if (other > 0 && other != pg->pid && pid_is_our_postmaster(pg, other) && ping(pg)) {
            pg->pid = other;
            log_warn("using the embedded PostgreSQL started by someone else (pid %d)", (int)other);
            return true;
        }
        if (start_postmaster(pg)) {
            log_warn("embedded PostgreSQL restarted (pid %d, attempt %d)", (int)pg->pid, attempt);
            return true;
        }
        log_warn("restarting the embedded PostgreSQL failed (attempt %d); trying again in %d ms",
                 attempt, backoff);
        if (!sup_sleep(backoff))
            return false;
        backoff = backoff < 5000 ? backoff * 2 : 10000;
    }
}

/* Whether this process is the one that supervises the cluster: the first
 * serve to take data_dir/supervisor.lock, or the one that takes it over when
 * that one stops. On taking over, follow the postmaster that runs now. */
static bool sup_is_mine(pgembed_t *pg, bool *mine)
{
    if (*mine)
        return true;
    if (flock(pg->sup_fd, LOCK_EX | LOCK_NB) != 0)
        return false;
    *mine = true;
    pid_t now = read_pidfile(pg);
    if (now > 0 && now != pg->pid) {
        log_info(
            "supervising the embedded PostgreSQL (pid %d) after the campaignd that did stopped",
            (int)now);
        pg->pid = now;
    }
    return true;
}

static void *supervise(void *arg)
{
    pgembed_t *pg = arg;
    bool mine = false;
    bool stopped = false; /* stopped on purpose: wait for someone to start it */
    while (sup_sleep(500)) {
        if (!sup_is_mine(pg, &mine))
            continue;
        if (stopped) {
            pid_t other = read_pidfile(pg);
            if (other > 0 && pid_is_our_postmaster(pg, other)) {
                pg->pid = other;
                stopped = false;
                log_info("the embedded PostgreSQL runs again (pid %d); supervising it", (int)other);
            }
            continue;
        }
        char how[96];
        pm_state_t state = postmaster_state(pg, how, sizeof(how));
        if (state == PM_RUNNING)
            continue;
        if (state == PM_STOPPED) {
            /* a clean shutdown is an operator's decision (pg_ctl stop), not a crash */
            log_warn("the embedded PostgreSQL (pid %d) was shut down (%s) by someone else; not "
                     "restarting it: start it again (pg_ctl start) or restart campaignd",
                     (int)pg->pid, how);
            stopped = true;
            continue;
        }
        log_error("the embedded PostgreSQL (pid %d) is gone (%s); restarting it: crash recovery "
                  "replays the write-ahead log, requests get 503 meanwhile",
                  (int)pg->pid, how);
        if (!restart(pg))
            break;
    }
    return NULL;
}

bool pgembed_supervise(pgembed_t *pg)
{
    if (sup.running || !pg->owned || pg->pid <= 0)
        return true;
    pg->sup_fd = open_lock(pg, "supervisor.lock");
    if (pg->sup_fd < 0)
        return false;
    sup.pg = pg;
    sup.stop = false;
    atomic_store(&supervisor_stopping, false);
    if (pthread_create(&sup.thread, NULL, supervise, pg) != 0) {
        log_error("cannot start the PostgreSQL supervisor thread");
        return false;
    }
    sup.running = true;
    return true;
}

static void supervise_stop(void)
{
    if (!sup.running)
        return;
    atomic_store(&supervisor_stopping, true);
    pthread_mutex_lock(&sup.mu);
    sup.stop = true;
    pthread_cond_broadcast(&sup.cv);
    pthread_mutex_unlock(&sup.mu);
    pthread_join(sup.thread, NULL);
    sup.running = false;
    atomic_store(&supervisor_stopping, false);
    if (sup.pg && sup.pg->sup_fd >= 0) {
        close(sup.pg->sup_fd); /* another serve takes over supervision */
        sup.pg->sup_fd = -1;
    }
}

/* Releases this process's share of the cluster. */
static void users_release(pgembed_t *pg)
{
    if (pg->users_fd >= 0)
        close(pg->users_fd);
    pg->users_fd = -1;
}

void pgembed_stop(pgembed_t *pg)
{
    supervise_stop();
    if (!pg->owned || pg->pid <= 0) {
        users_release(pg);
        return;
    }
    /* Only the last process using the cluster stops it; the exclusive lock,
     * held until the postmaster is gone, makes a process starting meanwhile
     * wait and then start a new one. */
    if (pg->users_fd >= 0 && flock(pg->users_fd, LOCK_EX | LOCK_NB) != 0) {
        log_info("leaving the embedded PostgreSQL running: another campaignd process uses it");
        users_release(pg);
        return;
    }
    /* Someone may have restarted the cluster under us (pg_ctl): stop the
     * postmaster that runs it now. */
    pid_t current = read_pidfile(pg);
    if (current > 0 && current != pg->pid && pid_is_our_postmaster(pg, current))
        pg->pid = current;
    kill(pg->pid, SIGINT); /* fast shutdown: roll back open transactions, checkpoint */
    for (int i = 0; i < 300; i++) {
        int st;
        /* reap it if it is our child; otherwise just watch the pid go away */
        pid_t r = waitpid(pg->pid, &st, WNOHANG);
        if (r == pg->pid || (r < 0 && kill(pg->pid, 0) != 0)) {
            log_info("embedded PostgreSQL stopped");
            pg->pid = 0;
            users_release(pg);
            return;
        }
        usleep(100000);
    }
    log_warn("embedded PostgreSQL did not stop in 30 s; sending SIGQUIT");
    kill(pg->pid, SIGQUIT);
    waitpid(pg->pid, NULL, 0);
    pg->pid = 0;
    users_release(pg);
}
