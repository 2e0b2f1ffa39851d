/*
 * The file-system byte store behind the storage backend interface. Objects
 * live in root/objects/<first two hex digits>/<version>; uploads are written
 * to root/tmp/<instance>/, fsynced, and renamed into place only when the
 * caller commits (after the metadata transaction), so a crash never leaves a
 * half-written object visible. Each process holds an flock on its instance
 * directory; at start every instance directory whose lock is free belongs to
 * a process that is gone, and its temporary files are removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "storage/storage_internal.h"

#define FS_PATH_MAX 1200

typedef struct fs_store {
    char root[FS_PATH_MAX / 2];
    char tmp[FS_PATH_MAX / 2]; /* this process's instance directory */
    int lock_fd;
} fs_store_t;

struct storage_put {
    fs_store_t *fs;
    int fd;
    char key[STORAGE_UUID_LEN + 1];
    char tmp_path[FS_PATH_MAX];
};

/* Keys are versions we generate: a UUID, nothing else reaches the file system. */
static bool key_ok(const char *key)
{
    return key && cd_is_uuid(key);
}

static bool object_path(const fs_store_t *fs, const char *key, char *out, size_t outlen,
                        bool mkdir_parent)
{
    char dir[FS_PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s/objects/%.2s", fs->root, key);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return false;
    if (mkdir_parent && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return false;
    n = snprintf(out, outlen, "%s/%s", dir, key);
    return n >= 0 && (size_t)n < outlen;
}

/* fsyncs a directory so a rename or unlink in it is durable. */
static bool fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

static bool fsync_parent(const char *file)
{
    char dir[FS_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", file);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return fsync_dir(dir);
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static bool fs_put_begin(void *self, const char *key, storage_put_t **out)
{
    fs_store_t *fs = self;
    *out = NULL;
    if (!key_ok(key))
        return false;
    storage_put_t *p = calloc(1, sizeof(*p));
    if (!p)
        return false;
    p->fs = fs;
    snprintf(p->key, sizeof(p->key), "%s", key);
    int n = snprintf(p->tmp_path, sizeof(p->tmp_path), "%s/%s.part", fs->tmp, key);
    if (n < 0 || (size_t)n >= sizeof(p->tmp_path))
        goto fail;
    p->fd = open(p->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (p->fd < 0) {
        log_error("storage: cannot create %s: %s", p->tmp_path, strerror(errno));
        goto fail;
    }
    *out = p;
    return true;
fail:
    free(p);
    return false;
}

static bool fs_put_write(storage_put_t *p, const void *data, size_t len)
{
    if (write_all(p->fd, data, len))
        return true;
    log_error("storage: cannot write %s: %s", p->tmp_path, strerror(errno));
    return false;
}

static bool fs_put_finish(storage_put_t *p)
{
    if (fsync(p->fd) == 0)
        return true;
    log_error("storage: cannot fsync %s: %s", p->tmp_path, strerror(errno));
    return false;
}

static void fs_put_abort(storage_put_t *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    unlink(p->tmp_path);
    free(p);
}

static bool fs_put_commit(storage_put_t *p)
{
    char final[FS_PATH_MAX];
    bool ok = false;
    if (!object_path(p->fs, p->key, final, sizeof(final), true))
        goto done;
    if (close(p->fd) != 0) {
        p->fd = -1;
        goto done;
    }
    p->fd = -1;
    if (rename(p->tmp_path, final) != 0) {
        log_error("storage: cannot rename %s to %s: %s", p->tmp_path, final, strerror(errno));
        goto done;
    }
    if (!fsync_parent(final))
        log_warn("storage: cannot fsync the directory of %s: %s", final, strerror(errno));
    ok = true;
done:
    if (!ok)
        fs_put_abort(p);
    else
        free(p);
    return ok;
}

static bool fs_get(void *self, const char *key, storage_blob_t *out)
{
    fs_store_t *fs = self;
    char path[FS_PATH_MAX];
    out->fd = -1;
    if (!key_ok(key) || !object_path(fs, key, path, sizeof(path), false))
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return false;
    }
    out->fd = fd;
    out->size = (uint64_t)st.st_size;
    out->mtime = st.st_mtime;
    return true;
}

static bool fs_remove(void *self, const char *key)
{
    fs_store_t *fs = self;
    char path[FS_PATH_MAX];
    if (!key_ok(key) || !object_path(fs, key, path, sizeof(path), false))
        return false;
    if (unlink(path) != 0 && errno != ENOENT) {
        log_warn("storage: cannot remove %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

static bool fs_copy(void *self, const char *src_key, storage_put_t *dst)
{
    storage_blob_t b;
    if (!fs_get(self, src_key, &b))
        return false;
    char buf[64 * 1024];
    bool ok = true;
    for (;;) {
        ssize_t r = read(b.fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ok = false;
            break;
        }
        if (r == 0)
            break;
        if (!fs_put_write(dst, buf, (size_t)r)) {
            ok = false;
            break;
        }
    }
    close(b.fd);
    return ok;
}

static bool fs_move(void *self, const char *src_key, const char *dst_key)
{
    fs_store_t *fs = self;
    char src[FS_PATH_MAX], dst[FS_PATH_MAX];
    if (!key_ok(src_key) || !key_ok(dst_key) ||
        !object_path(fs, src_key, src, sizeof(src), false) ||
        !object_path(fs, dst_key, dst, sizeof(dst), true))
        return false;
    if (rename(src, dst) != 0)
        return false;
    bool ok = fsync_parent(dst);
    if (ok)
        ok = fsync_parent(src);
    return ok;
}

static const storage_backend_ops_t FS_OPS = {
    .put_begin = fs_put_begin,
    .put_write = fs_put_write,
    .put_finish = fs_put_finish,
    .put_commit = fs_put_commit,
    .put_abort = fs_put_abort,
    .get = fs_get,
    .remove = fs_remove,
    .copy = fs_copy,
    .move = fs_move,
};

/* Removes the files of one directory (not recursing) and the directory. */
static void remove_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[FS_PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n > 0 && (size_t)n < sizeof(path))
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Removes the instance directories under tmp whose owner is gone. */
static void clean_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    struct dirent *e;
    int removed = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char dir[FS_PATH_MAX], lock[FS_PATH_MAX + 8];
        int n = snprintf(dir, sizeof(dir), "%s/%s", tmp, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(dir))
            continue;
        snprintf(lock, sizeof(lock), "%s/.lock", dir);
        int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd); /* a live process owns it */
            continue;
        }
        remove_dir_files(dir);
        if (fd >= 0)
            close(fd);
        removed++;
    }
    closedir(d);
    if (removed)
        log_info("storage: removed the temporary files of %d interrupted process(es)", removed);
}

bool storage__fs_open(const char *root, storage_backend_t *out)
{
    fs_store_t *fs = calloc(1, sizeof(*fs));
    char path[FS_PATH_MAX];
    if (!fs)
        return false;
    fs->lock_fd = -1;
    int n = snprintf(fs->root, sizeof(fs->root), "%s", root);
    if (n < 0 || (size_t)n >= sizeof(fs->root))
        goto fail;
    const char *subdirs[] = {"", "/objects", "/tmp"};
    for (size_t i = 0; i < CD_ARRAY_LEN(subdirs); i++) {
        snprintf(path, sizeof(path), "%s%s", root, subdirs[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            log_error("storage: cannot create %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    snprintf(path, sizeof(path), "%s/tmp", root);
    clean_stale(path);
    char id[CD_UUID_LEN + 1];
    if (!cd_random_uuid(id))
        goto fail;
    n = snprintf(fs->tmp, sizeof(fs->tmp), "%s/tmp/%ld-%.8s", root, (long)getpid(), id);
    if (n < 0 || (size_t)n >= sizeof(fs->tmp) || mkdir(fs->tmp, 0700) != 0) {
        log_error("storage: cannot create %s: %s", fs->tmp, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/.lock", fs->tmp);
    fs->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fs->lock_fd < 0 || flock(fs->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("storage: cannot lock %s: %s", path, strerror(errno));
        goto fail;
    }
    out->ops = &FS_OPS;
    out->self = fs;
    return true;
fail:
    if (fs->lock_fd >= 0)
        close(fs->lock_fd);
    free(fs);
    return false;
}

void storage__fs_close(storage_backend_t *b)
{
    fs_store_t *fs = b->self;
    if (!fs)
        return;
    remove_dir_files(fs->tmp);
    if (fs->lock_fd >= 0)
        close(fs->lock_fd);
    free(fs);
    b->self = NULL;
}
