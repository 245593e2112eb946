#ifndef CLINUXSUPPORT_H
#define CLINUXSUPPORT_H
/*
 * The small part of Linux that Swift's Glibc module does not expose (setns, unshare, gettid and the
 * CLONE_* flags live behind _GNU_SOURCE), plus helpers that must run without any Swift code between
 * two system calls.
 *
 * Convention: every wrapper returns 0 (or a non-negative result) on success and -errno on failure, so
 * no Swift/ARC code runs between the system call and reading errno.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

extern const int CLS_CLONE_NEWNET;
extern const int CLS_CLONE_NEWNS;
/* statfs(2) f_type of an nsfs file (a namespace bind mount or /proc/<tid>/ns/<type>). */
extern const long CLS_NSFS_MAGIC;

/* Socket constants for the Swift roles. Glibc declares these as enum-backed macros, which the Swift
 * importer does not resolve reliably in a module that also sees swift-nio's C headers ("cannot find
 * 'SOCK_DGRAM' in scope" in some builds): here they are plain ints from the real headers. */
extern const int CLS_SOCK_DGRAM;
extern const int CLS_SOCK_NONBLOCK;
extern const int CLS_SOCK_CLOEXEC;
extern const int CLS_MSG_DONTWAIT;

/* setns(2): 0 or -errno. */
int cls_setns(int fd, int nstype);
/* unshare(2): 0 or -errno. */
int cls_unshare(int flags);
/* gettid(2): never fails. */
pid_t cls_gettid(void);

/* pthread_create, with the new thread started on a CPU other than the caller's when there is one
 * (its affinity, set by glibc before the thread runs: the caller's mask minus the caller's CPU).
 * The caller's mask is kept for cls_thread_allow_cpus_of_creator (one slot: one creator at a time,
 * natlab's main thread). 0 or -errno. */
int cls_pthread_create_elsewhere(pthread_t *thread, void *(*body)(void *), void *arg);
/* Gives the calling thread the mask cls_pthread_create_elsewhere kept: 0 or -errno. */
int cls_thread_allow_cpus_of_creator(void);
/* How many CPUs the calling thread may run on (0 if unknown). */
int cls_thread_allowed_cpus(void);

/* mount(2) / umount2(2): 0 or -errno. */
int cls_mount(const char *source, const char *target, const char *fstype, unsigned long flags);
int cls_umount2(const char *target, int flags);
/* Flags used by namespace handling, as C constants so the Swift side does not depend on Glibc's module. */
extern const unsigned long CLS_MS_BIND;
extern const unsigned long CLS_MS_REC;
extern const unsigned long CLS_MS_SHARED;
extern const unsigned long CLS_MS_SLAVE;
extern const int CLS_MNT_DETACH;

/* statfs(path).f_type, or -errno. */
long cls_statfs_type(const char *path);

/*
 * socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, protocol) then close: 0 when the calling thread's network
 * namespace can open such a socket, else -errno. Used before nft_ctx_new, which calls exit() when it
 * cannot open its NETLINK_NETFILTER socket.
 */
int cls_probe_netlink(int protocol);
extern const int CLS_NETLINK_NETFILTER;

/*
 * Turn on NETLINK_EXT_ACK on a netlink socket so the kernel explains its errors
 * (setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)). 0 or -errno.
 */
int cls_netlink_enable_ext_ack(int fd);

/*
 * Given the payload of an NLMSG_ERROR message (a struct nlmsgerr, as libnl's error callback receives
 * it), copy the kernel's extended-ACK text (NLMSGERR_ATTR_MSG) into buf (NUL-terminated).
 * Returns the length copied, 0 when there is no message.
 * `nlmsgerr` is the pointer libnl passes; the netlink header precedes it in the same buffer.
 */
size_t cls_nlmsgerr_ext_ack_message(const void *nlmsgerr, char *buf, size_t buflen);
/* The (negative) error field of a struct nlmsgerr. */
int cls_nlmsgerr_error(const void *nlmsgerr);

/*
 * `conntrack -F` for the calling thread's network namespace, over ctnetlink (NETLINK_NETFILTER,
 * IPCTNL_MSG_CT_DELETE without attributes = flush, IPv4 and IPv6). 0 or -errno.
 * With keep_fd, the socket is not closed once the kernel has answered: *keep_fd receives it (or -1)
 * and the caller closes it later (closing a NETLINK_NETFILTER socket can wait for nf_tables, see
 * NetfilterSockets.swift).
 */
int cls_conntrack_flush(int *keep_fd);

/*
 * Closing the last reference to a bound NETLINK_NETFILTER socket waits until nf_tables has cleaned up
 * the process's earlier commits that deleted or replaced objects (an RCU grace period, ~20 ms after
 * the last commit). To close its
 * sockets without that wait, a process starts a child holding a copy of each of them (found through
 * /proc/self/fd), closes its own copies (not the last references: instant), then closes *release_fd:
 * the child closes its copies, which does the waiting, then stays until the caller has exited (at most
 * 200 ms more) and exits. The child shares the caller's memory (CLONE_VM): while it lives, the
 * caller's exit is not the last user of that memory, so the tear-down of the address space is the
 * child's, after the caller's exit has been reported to whoever waits for it. It runs on *stack_out, a
 * mapping of cls_netfilter_closer_stack_size() bytes: unmap it only once the child is reaped (or
 * never). Returns the child's pid (reap it, or leave it to init once the caller exits), 0 when the
 * process has no netfilter socket, or -errno.
 */
pid_t cls_netfilter_closer_start(int *release_fd, void **stack_out);
size_t cls_netfilter_closer_stack_size(void);

/*
 * Waits up to timeout_ms until every process in pids has exited (children or not: pidfd_open + poll,
 * so the wait ends the moment the last one exits). Returns how many may still be running.
 */
int cls_wait_for_exit(const pid_t *pids, int count, int timeout_ms);

/*
 * `ip netns exec`: on the calling thread, join the network namespace at ns_path, unshare the mount
 * namespace, make / recursively a slave, remount /sys so it shows the namespace's devices, then
 * execvp(argv[0], argv). sysfs_name is used as the sysfs mount source (iproute2 uses the netns name).
 *
 * Only returns on failure: -errno, and *failed_step names the step ("open", "setns", "unshare",
 * "mount /", "mount /sys", "execvp"). After a failure the calling thread may be left inside the
 * namespace and in a private mount namespace: the caller must exit the process.
 */
int cls_netns_exec(const char *ns_path, const char *sysfs_name, char *const argv[], const char **failed_step);

/*
 * Start argv as a new process inside the network namespace at ns_path, the way cls_netns_exec runs it,
 * without replacing the caller: fork, then in the child only async-signal-safe calls — a new session
 * (setsid) when new_session is non-zero, stdin/stdout/stderr from the given fds (-1 keeps the parent's),
 * default signal dispositions and an empty signal mask, then the cls_netns_exec sequence.
 * Returns the child's pid, or -errno when any step before the program started failed (reported by the
 * child over a close-on-exec pipe; *failed_step names the step, as for cls_netns_exec, or "fork").
 */
pid_t cls_netns_spawn(const char *ns_path, const char *sysfs_name, char *const argv[],
                      int stdin_fd, int stdout_fd, int stderr_fd, int new_session, const char **failed_step);

#ifdef __cplusplus
}
#endif
#endif
