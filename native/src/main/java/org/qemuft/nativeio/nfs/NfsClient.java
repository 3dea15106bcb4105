package org.qemuft.nativeio.nfs;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One NFSv3 mount made by libnfs in user space (Debian's libnfs13, 4.0), called through the FFM
 * API: no kernel NFS client needed. Paths are relative to the mounted directory, '/'-separated.
 *
 * <p>Every call is one attempt: it returns the server's answer or throws {@link NfsException}
 * after at most the RPC timeout per RPC it sends (a path lookup sends one LOOKUP per component).
 * Retrying, and deciding whether a retry is safe, is the caller's business.
 *
 * <p>libnfs 4.0 contexts are not thread-safe; this class serialises calls on one context, so it
 * is safe to share, but concurrent callers wait for each other. Use one client per thread for
 * parallelism. Facts about libnfs that matter here are written down in docs/shared-storage.md.
 *
 * <p>Most calls use libnfs's file API. {@link #createExclusive} sends its CREATE through libnfs's
 * raw RPC layer on the same connection (the file API cannot send an EXCLUSIVE create); the C
 * structs involved are laid out in {@link Nfs3Layouts}.
 */
public final class NfsClient implements AutoCloseable {
  /** Linux open(2) flags as libnfs expects them. */
  private static final int O_RDONLY = 0;
  private static final int O_WRONLY = 1;
  private static final int O_EXCL = 0200;
  private static final int O_NOFOLLOW = 0400000;
  /** The largest READ/WRITE this client sends, below the server's own maximum. */
  private static final int MAX_CHUNK = 1 << 20;
  /** poll(2) events. */
  static final int POLLIN = 0x001;
  static final int POLLOUT = 0x004;
  /** How often the raw-RPC loop wakes up to let libnfs expire timed-out RPCs (as libnfs's own sync calls do). */
  private static final int POLL_MS = 100;
  /**
   * Raw RPCs sent by {@link #createExclusive} and not answered yet, by the token passed to libnfs
   * as the callback's private data. The callback ({@link #onRawReply}) runs inside rpc_service
   * or nfs_destroy_context and finds its waiter here, or nothing if the waiter gave up.
   */
  private static final ConcurrentHashMap<Long, RawReply> PENDING = new ConcurrentHashMap<>();
  private static final AtomicLong TOKENS = new AtomicLong(1);

  private final String server;
  private final String export;
  private final String target;
  private final long rpcTimeoutMs;
  private final ReentrantLock lock = new ReentrantLock();
  private MemorySegment ctx;

  private NfsClient(String server, String export, MemorySegment ctx, long rpcTimeoutMs) {
    this.server = server;
    this.export = export;
    this.target = "nfs://" + server + export;
    this.ctx = ctx;
    this.rpcTimeoutMs = rpcTimeoutMs;
  }

  /**
   * Mounts {@code export} (an absolute path the server exports, or a directory below one) of
   * {@code server} (host name or IPv4 address; the server's rpcbind tells the ports).
   *
   * @param rpcTimeout how long one RPC may go unanswered before the call fails with EINTR
   *     ("Command timed out"); libnfs counts in milliseconds on a coarse monotonic clock
   * @throws NfsException if the server does not answer or refuses the mount
   * @throws IllegalStateException if libnfs is not installed
   */
  public static NfsClient mount(String server, String export, Duration rpcTimeout) throws NfsException {
    Objects.requireNonNull(server, "server");
    Objects.requireNonNull(export, "export");
    if (!export.startsWith("/")) {
      throw new IllegalArgumentException("NFS export '" + export + "' must be an absolute path");
    }
    long ms = rpcTimeout.toMillis();
    if (ms < 1 || ms > Integer.MAX_VALUE) {
      throw new IllegalArgumentException("RPC timeout " + rpcTimeout + " is out of range");
    }
    Lib lib = Lib.get();
    MemorySegment ctx;
    try {
      ctx = (MemorySegment) lib.initContext.invokeExact();
    } catch (Throwable t) {
      throw new IllegalStateException("libnfs nfs_init_context failed", t);
    }
    if (ctx.equals(MemorySegment.NULL)) {
      throw new NfsException("nfs://" + server + export, "nfs_init_context", "-", NfsException.EFAULT,
          "libnfs could not create a context (out of memory?)");
    }
    NfsClient c = new NfsClient(server, export, ctx, ms);
    try (Arena a = Arena.ofConfined()) {
      lib.setTimeout.invokeExact(ctx, (int) ms);
      // Directory listings must always come from the server: another host may have just changed them.
      lib.setDircache.invokeExact(ctx, 0);
      // No silent reconnect-and-resend inside libnfs: a broken connection fails the call, and the
      // caller (who knows whether the operation is safe to repeat) decides. See the docs.
      lib.setAutoreconnect.invokeExact(ctx, 0);
      int rc = (int) lib.mount.invokeExact(ctx, a.allocateFrom(server), a.allocateFrom(export));
      c.check(rc, "mount", export);
      return c;
    } catch (NfsException e) {
      c.close();
      throw e;
    } catch (Throwable t) {
      c.close();
      throw new IllegalStateException("native call failed mounting " + c.target, t);
    }
  }

  public String server() {
    return server;
  }

  public String export() {
    return export;
  }

  /** Attributes of {@code path}, not following a symbolic link. */
  public NfsStat stat(String path) throws NfsException {
    Lib lib = Lib.get();
    return call("stat", path, a -> {
      MemorySegment st = a.allocate(Nfs3Layouts.NFS_STAT_64);
      check((int) lib.lstat64.invokeExact(ctx(), a.allocateFrom(abs(path)), st), "stat", path);
      return toStat(st);
    });
  }

  /**
   * The whole content of a regular file.
   *
   * @throws NfsException with EFBIG if it is larger than {@code maxBytes}
   */
  public byte[] readFile(String path, int maxBytes) throws NfsException {
    Lib lib = Lib.get();
    return call("read", path, a -> {
      MemorySegment fhp = a.allocate(ValueLayout.ADDRESS);
      MemorySegment p = a.allocateFrom(abs(path));
      int opened = (int) lib.open.invokeExact(ctx(), p, O_RDONLY | O_NOFOLLOW, fhp);
      if (opened == -NfsException.EACCES) {
        // A file just made by createExclusive has the server's default mode (ganesha 0600, the
        // Linux server 0) until its creator sets one; while it is empty there is nothing to read.
        MemorySegment st = a.allocate(Nfs3Layouts.NFS_STAT_64);
        if ((int) lib.lstat64.invokeExact(ctx(), p, st) == 0 && toStat(st).isRegularFile() && toStat(st).size() == 0) {
          return new byte[0];
        }
      }
      check(opened, "open", path);
      MemorySegment fh = fhp.get(ValueLayout.ADDRESS, 0);
      try {
        // An empty file is not READ: a READ updates the file's atime on the server (relatime), and
        // an empty file made by createExclusive keeps half of its verifier there.
        MemorySegment st = a.allocate(Nfs3Layouts.NFS_STAT_64);
        check((int) lib.fstat64.invokeExact(ctx(), fh, st), "stat", path);
        if (toStat(st).size() == 0) {
          return new byte[0];
        }
        int chunk = (int) Math.min(MAX_CHUNK, Math.max(4096, (long) lib.readmax.invokeExact(ctx())));
        MemorySegment buf = a.allocate(chunk);
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        long off = 0;
        while (true) {
          int n = (int) lib.pread.invokeExact(ctx(), fh, off, (long) chunk, buf);
          check(n, "read", path);
          if (n == 0) {
            return out.toByteArray();
          }
          if (off + n > maxBytes) {
            throw new NfsException(target, "read", path, NfsException.EFBIG,
                "file is larger than the " + maxBytes + " bytes allowed here");
          }
          out.write(buf.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE));
          off += n;
        }
      } finally {
        int ignored = (int) lib.close.invokeExact(ctx(), fh);
      }
    });
  }

  /**
   * Creates {@code path} (which must not exist: the server checks, NFSv3 CREATE GUARDED), writes
   * {@code data}, commits it to the server's stable storage (COMMIT) and closes it.
   *
   * @throws NfsException EEXIST if the name exists
   */
  public void createFile(String path, byte[] data, int mode) throws NfsException {
    Lib lib = Lib.get();
    call("create", path, a -> {
      MemorySegment fhp = a.allocate(ValueLayout.ADDRESS);
      check((int) lib.create.invokeExact(ctx(), a.allocateFrom(abs(path)), O_EXCL | O_NOFOLLOW, mode, fhp),
          "create", path);
      writeAndClose(a, fhp.get(ValueLayout.ADDRESS, 0), data, path);
      return null;
    });
  }

  /**
   * NFSv3 CREATE in mode EXCLUSIVE with {@code verifier} (RFC 1813 3.3.8): one RPC, sent through
   * libnfs's raw API because libnfs's file API only sends GUARDED. The server creates an empty
   * file and keeps the verifier with it (ganesha and the Linux server in its atime and mtime); a
   * CREATE EXCLUSIVE of an existing name succeeds only if the file still holds the same verifier,
   * which makes a retransmission of this call (after a lost reply) succeed again, while any other
   * verifier gets EEXIST. The file's attributes are left as the server set them: writing to the
   * file, or setting its times, ends the verifier's life. Facts: docs/shared-storage.md.
   *
   * @param verifier 8 bytes
   * @throws NfsException EEXIST if the name exists and does not hold this verifier; ENOENT if
   *     the parent directory does not exist; EINTR if the server did not answer in time
   */
  public void createExclusive(String path, byte[] verifier) throws NfsException {
    Objects.requireNonNull(verifier, "verifier");
    if (verifier.length != Nfs3Layouts.CREATEVERF_SIZE) {
      throw new IllegalArgumentException("an NFSv3 create verifier has " + Nfs3Layouts.CREATEVERF_SIZE
          + " bytes, not " + verifier.length);
    }
    String abs = abs(path);
    int slash = abs.lastIndexOf('/');
    String dir = slash == 0 ? "/" : abs.substring(0, slash);
    String name = abs.substring(slash + 1);
    if (name.isEmpty()) {
      throw new IllegalArgumentException("cannot create '" + path + "': no file name");
    }
    Lib lib = Lib.get();
    call("create exclusive", path, a -> {
      // The directory's file handle: libnfs looks the path up and hands out its handle.
      MemorySegment dirp = a.allocate(ValueLayout.ADDRESS);
      check((int) lib.open.invokeExact(ctx(), a.allocateFrom(dir), O_RDONLY, dirp), "open directory of", path);
      MemorySegment dirFh = dirp.get(ValueLayout.ADDRESS, 0);
      try {
        MemorySegment fh = ((MemorySegment) lib.getFh.invokeExact(dirFh)).reinterpret(Nfs3Layouts.NFS_FH.byteSize());
        MemorySegment args = a.allocate(Nfs3Layouts.CREATE3ARGS); // zeroed
        args.set(ValueLayout.JAVA_INT, Nfs3Layouts.ARGS_DIR_LEN, fh.get(ValueLayout.JAVA_INT, Nfs3Layouts.FH_LEN));
        args.set(ValueLayout.ADDRESS, Nfs3Layouts.ARGS_DIR_VAL, fh.get(ValueLayout.ADDRESS, Nfs3Layouts.FH_VAL));
        args.set(ValueLayout.ADDRESS, Nfs3Layouts.ARGS_NAME, a.allocateFrom(name));
        args.set(ValueLayout.JAVA_INT, Nfs3Layouts.ARGS_MODE, Nfs3Layouts.EXCLUSIVE);
        MemorySegment.copy(verifier, 0, args, ValueLayout.JAVA_BYTE, Nfs3Layouts.ARGS_VERF, verifier.length);
        RawReply r = rawCall(a, "create exclusive", path,
            (rpc, cb, token) -> (int) lib.rpcNfs3CreateAsync.invokeExact(rpc, cb, args, token));
        if (r.nfsStatus != Nfs3Layouts.NFS3_OK) {
          // libnfs's own mapping, except where it loses the meaning: NOTSUPP (-EINVAL there) and
          // DQUOT (-ERANGE there).
          int errno = switch (r.nfsStatus) {
            case Nfs3Layouts.NFS3ERR_NOTSUPP -> NfsException.ENOTSUP;
            case Nfs3Layouts.NFS3ERR_DQUOT -> NfsException.EDQUOT;
            default -> Math.abs((int) lib.nfsstat3ToErrno.invokeExact(r.nfsStatus));
          };
          MemorySegment str = (MemorySegment) lib.nfsstat3ToStr.invokeExact(r.nfsStatus);
          String status = str.equals(MemorySegment.NULL) ? "status " + r.nfsStatus : str.reinterpret(256).getString(0);
          throw new NfsException(target, "create exclusive", path, errno == 0 ? NfsException.EIO : errno,
              "NFS: CREATE EXCLUSIVE of " + abs + " failed with " + status + "(" + -errno + ")");
        }
      } finally {
        int ignored = (int) lib.close.invokeExact(ctx(), dirFh);
      }
      return null;
    });
  }

  /**
   * Sets the permission bits of the existing regular file {@code path} to {@code mode}, then
   * writes {@code data} into it from offset 0 and commits (COMMIT) before returning. Meant for a
   * file this client just made with {@link #createExclusive}, which carries no attributes: the
   * server picks the new file's mode (ganesha 0600, the Linux server 0), so the mode is set by
   * path before the file is opened for writing, as the kernel's NFS client does after an
   * exclusive create. Does not truncate.
   */
  public void writeInto(String path, byte[] data, int mode) throws NfsException {
    Lib lib = Lib.get();
    call("write", path, a -> {
      MemorySegment p = a.allocateFrom(abs(path));
      check((int) lib.chmod.invokeExact(ctx(), p, mode), "chmod", path);
      MemorySegment fhp = a.allocate(ValueLayout.ADDRESS);
      check((int) lib.open.invokeExact(ctx(), p, O_WRONLY | O_NOFOLLOW, fhp), "open", path);
      writeAndClose(a, fhp.get(ValueLayout.ADDRESS, 0), data, path);
      return null;
    });
  }

  /** Writes {@code data} from offset 0 of open file {@code fh}, COMMITs and closes it (also on failure). */
  private void writeAndClose(Arena a, MemorySegment fh, byte[] data, String path) throws Throwable {
    Lib lib = Lib.get();
    boolean closed = false;
    try {
      int chunk = (int) Math.min(MAX_CHUNK, Math.max(4096, (long) lib.writemax.invokeExact(ctx())));
      MemorySegment buf = a.allocate(Math.max(1, Math.min(chunk, data.length)));
      long off = 0;
      while (off < data.length) {
        int len = (int) Math.min(chunk, data.length - off);
        MemorySegment.copy(data, (int) off, buf, ValueLayout.JAVA_BYTE, 0, len);
        int n = (int) lib.pwrite.invokeExact(ctx(), fh, off, (long) len, buf);
        check(n, "write", path);
        if (n == 0) {
          throw new NfsException(target, "write", path, NfsException.EIO, "server accepted 0 bytes");
        }
        off += n;
      }
      check((int) lib.fsync.invokeExact(ctx(), fh), "fsync", path);
      closed = true;
      check((int) lib.close.invokeExact(ctx(), fh), "close", path);
    } finally {
      if (!closed) {
        int ignored = (int) lib.close.invokeExact(ctx(), fh);
      }
    }
  }

  /** Hard link: {@code newPath} becomes another name of {@code existing} (NFSv3 LINK; EEXIST if taken). */
  public void link(String existing, String newPath) throws NfsException {
    Lib lib = Lib.get();
    call("link", newPath, a -> {
      check((int) lib.link.invokeExact(ctx(), a.allocateFrom(abs(existing)), a.allocateFrom(abs(newPath))),
          "link " + existing + " ->", newPath);
      return null;
    });
  }

  /** Renames {@code from} to {@code to}, atomically replacing {@code to} if it exists (NFSv3 RENAME). */
  public void rename(String from, String to) throws NfsException {
    Lib lib = Lib.get();
    call("rename", to, a -> {
      check((int) lib.rename.invokeExact(ctx(), a.allocateFrom(abs(from)), a.allocateFrom(abs(to))),
          "rename " + from + " ->", to);
      return null;
    });
  }

  public void unlink(String path) throws NfsException {
    Lib lib = Lib.get();
    call("unlink", path, a -> {
      check((int) lib.unlink.invokeExact(ctx(), a.allocateFrom(abs(path))), "unlink", path);
      return null;
    });
  }

  public void mkdir(String path, int mode) throws NfsException {
    Lib lib = Lib.get();
    call("mkdir", path, a -> {
      check((int) lib.mkdir2.invokeExact(ctx(), a.allocateFrom(abs(path)), mode), "mkdir", path);
      return null;
    });
  }

  public void rmdir(String path) throws NfsException {
    Lib lib = Lib.get();
    call("rmdir", path, a -> {
      check((int) lib.rmdir.invokeExact(ctx(), a.allocateFrom(abs(path))), "rmdir", path);
      return null;
    });
  }

  /** The names in directory {@code path}, without "." and "..", in the server's order. */
  public List<String> list(String path) throws NfsException {
    Lib lib = Lib.get();
    return call("list", path, a -> {
      MemorySegment dirp = a.allocate(ValueLayout.ADDRESS);
      check((int) lib.opendir.invokeExact(ctx(), a.allocateFrom(abs(path)), dirp), "opendir", path);
      MemorySegment dir = dirp.get(ValueLayout.ADDRESS, 0);
      List<String> names = new ArrayList<>();
      try {
        while (true) {
          MemorySegment ent = (MemorySegment) lib.readdir.invokeExact(ctx(), dir);
          if (ent.equals(MemorySegment.NULL)) {
            return names;
          }
          MemorySegment name = ent.reinterpret(Lib.DIRENT_PREFIX).get(Lib.C_STRING, 8);
          String n = name.reinterpret(4096).getString(0);
          if (!n.equals(".") && !n.equals("..")) {
            names.add(n);
          }
        }
      } finally {
        lib.closedir.invokeExact(ctx(), dir);
      }
    });
  }

  /** Closes the connection and frees the context. Idempotent. */
  @Override
  public void close() {
    lock.lock();
    try {
      if (ctx != null) {
        Lib.get().destroyContext.invokeExact(ctx);
        ctx = null;
      }
    } catch (Throwable t) {
      throw new IllegalStateException("libnfs nfs_destroy_context failed for " + target, t);
    } finally {
      lock.unlock();
    }
  }

  @Override
  public String toString() {
    return "libnfs client of " + target;
  }

  // ---------------------------------------------------------------------------------------------

  @FunctionalInterface
  private interface Body<T> {
    T run(Arena a) throws Throwable;
  }

  private <T> T call(String op, String path, Body<T> body) throws NfsException {
    lock.lock();
    try (Arena a = Arena.ofConfined()) {
      return body.run(a);
    } catch (NfsException e) {
      throw e;
    } catch (IllegalStateException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call failed: " + op + " " + path + " on " + target, t);
    } finally {
      lock.unlock();
    }
  }

  /**
   * The context; after {@link #close} (possibly by another thread while this one waited for the
   * lock) an NfsException that counts as no answer, so callers reconnect rather than crash.
   */
  private MemorySegment ctx() throws NfsException {
    if (ctx == null) {
      throw new NfsException(target, "call", "-", NfsException.EIO, "this libnfs client was closed");
    }
    return ctx;
  }

  /** libnfs returns -errno on failure; turns that into an NfsException with libnfs's text. */
  private void check(int rc, String op, String path) throws NfsException {
    if (rc >= 0) {
      return;
    }
    String text;
    try {
      MemorySegment s = (MemorySegment) Lib.get().getError.invokeExact(ctx());
      text = s.equals(MemorySegment.NULL) ? "" : s.reinterpret(4096).getString(0);
    } catch (Throwable t) {
      text = "";
    }
    // libnfs 4.0 returns -1 (not -errno) from a few paths, e.g. a mount whose connect failed.
    int errno = rc == -1 ? NfsException.EFAULT : -rc;
    throw new NfsException(target, op, path, errno, text);
  }

  private static String abs(String path) {
    return path.startsWith("/") ? path : "/" + path;
  }

  private static NfsStat toStat(MemorySegment st) {
    long sec = 1_000_000_000L;
    return new NfsStat(
        st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_ino")),
        (int) st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_mode")),
        st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_nlink")),
        st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_size")),
        st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_atime")) * sec
            + st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_atime_nsec")),
        st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_mtime")) * sec
            + st.get(ValueLayout.JAVA_LONG, Nfs3Layouts.offset(Nfs3Layouts.NFS_STAT_64, "nfs_mtime_nsec")));
  }

  // ---- raw RPCs through libnfs's service loop -----------------------------------------------

  /** What the callback of one raw RPC reported. Written by {@link #onRawReply}, read after it set done. */
  private static final class RawReply {
    volatile boolean done;
    volatile int rpcStatus = -1;
    volatile int nfsStatus = -1;
    volatile String error = "";
  }

  /** Queues one raw RPC: {@code rpc_nfs3_*_async(rpc, cb, args, private_data)}, 0 if queued. */
  @FunctionalInterface
  private interface RawSend {
    int send(MemorySegment rpc, MemorySegment callback, MemorySegment token) throws Throwable;
  }

  /**
   * Sends one raw NFSv3 RPC on this client's connection and runs libnfs's service loop (poll on
   * its socket, rpc_service) until the reply's callback has run. libnfs expires the RPC after this
   * client's RPC timeout (its callback then reports RPC_STATUS_TIMEOUT); a deadline one second
   * later stops the loop regardless. Returns a reply whose nfsStatus is the NFS status the server
   * answered; throws if there was no answer (EINTR on timeout, EIO on a broken connection, EFAULT
   * on an RPC-level error), as libnfs's own calls do.
   */
  private RawReply rawCall(Arena a, String op, String path, RawSend send) throws Throwable {
    Lib lib = Lib.get();
    MemorySegment rpc = (MemorySegment) lib.getRpcContext.invokeExact(ctx());
    RawReply r = new RawReply();
    long token = TOKENS.getAndIncrement();
    PENDING.put(token, r);
    try {
      int queued = send.send(rpc, lib.rawCallback, MemorySegment.ofAddress(token));
      if (queued != 0) {
        throw new NfsException(target, op, path, NfsException.EFAULT, "libnfs could not queue the RPC: " + rpcError(rpc));
      }
      MemorySegment pfd = a.allocate(Nfs3Layouts.POLLFD);
      long deadline = System.nanoTime() + (rpcTimeoutMs + 1000) * 1_000_000L;
      while (!r.done) {
        int fd = (int) lib.rpcGetFd.invokeExact(rpc);
        if (fd < 0) {
          throw new NfsException(target, op, path, NfsException.EIO, "the connection to the server is closed");
        }
        pfd.set(ValueLayout.JAVA_INT, Nfs3Layouts.POLL_FD, fd);
        pfd.set(ValueLayout.JAVA_SHORT, Nfs3Layouts.POLL_EVENTS, (short) (int) lib.rpcWhichEvents.invokeExact(rpc));
        pfd.set(ValueLayout.JAVA_SHORT, Nfs3Layouts.POLL_REVENTS, (short) 0);
        int n = (int) lib.poll.invokeExact(pfd, 1L, POLL_MS);
        // n < 0: poll was interrupted (EINTR); let rpc_service just expire timed-out RPCs.
        int revents = n > 0 ? pfd.get(ValueLayout.JAVA_SHORT, Nfs3Layouts.POLL_REVENTS) & 0xffff : 0;
        int serviced = (int) lib.rpcService.invokeExact(rpc, revents);
        if (serviced < 0 && !r.done) {
          throw new NfsException(target, op, path, NfsException.EIO, "rpc_service failed: " + rpcError(rpc));
        }
        if (!r.done && System.nanoTime() > deadline) {
          throw new NfsException(target, op, path, NfsException.EINTR,
              "no reply within " + (rpcTimeoutMs + 1000) + " ms: Command timed out");
        }
      }
    } finally {
      PENDING.remove(token);
    }
    return switch (r.rpcStatus) {
      case Nfs3Layouts.RPC_STATUS_SUCCESS -> r;
      case Nfs3Layouts.RPC_STATUS_TIMEOUT -> throw new NfsException(target, op, path, NfsException.EINTR,
          "no reply within " + rpcTimeoutMs + " ms: Command timed out");
      case Nfs3Layouts.RPC_STATUS_CANCEL -> throw new NfsException(target, op, path, NfsException.EIO,
          "the RPC was cancelled (connection closed)");
      default -> throw new NfsException(target, op, path, NfsException.EFAULT, "RPC error: "
          + (r.error.isEmpty() ? rpcError(rpc) : r.error));
    };
  }

  private static String rpcError(MemorySegment rpc) {
    try {
      MemorySegment s = (MemorySegment) Lib.get().rpcGetError.invokeExact(rpc);
      return s.equals(MemorySegment.NULL) ? "" : s.reinterpret(4096).getString(0);
    } catch (Throwable t) {
      return "";
    }
  }

  /**
   * The {@code rpc_cb} of every raw RPC: {@code void (struct rpc_context *, int status, void *data,
   * void *private_data)}. Runs inside rpc_service on the calling thread, or inside
   * nfs_destroy_context (status CANCEL) for RPCs nobody waits for any more. {@code data} is the
   * decoded result on success (every NFSv3 result starts with its nfsstat3), the error text on
   * RPC_STATUS_ERROR. Nothing may escape an upcall: an exception here would end the JVM.
   */
  private static void onRawReply(MemorySegment rpc, int status, MemorySegment data, MemorySegment privateData) {
    try {
      RawReply r = PENDING.remove(privateData.address());
      if (r == null) {
        return;
      }
      r.rpcStatus = status;
      if (status == Nfs3Layouts.RPC_STATUS_SUCCESS && !data.equals(MemorySegment.NULL)) {
        r.nfsStatus = data.reinterpret(Nfs3Layouts.CREATE3RES.byteSize())
            .get(ValueLayout.JAVA_INT, Nfs3Layouts.RES_STATUS);
      } else if (status == Nfs3Layouts.RPC_STATUS_ERROR && !data.equals(MemorySegment.NULL)) {
        r.error = data.reinterpret(1024).getString(0);
      }
      r.done = true;
    } catch (Throwable t) {
      // leave r undone: the waiter times out and reports no answer
    }
  }

  /** The downcall handles, bound once on first use. */
  private static final class Lib {
    /** struct nfsdirent starts {next, name, inode, ...}: only the first fields are read. */
    static final long DIRENT_PREFIX = 24;
    static final AddressLayout C_STRING = ValueLayout.ADDRESS;
    private static volatile Lib instance;

    final MethodHandle initContext;
    final MethodHandle destroyContext;
    final MethodHandle mount;
    final MethodHandle getError;
    final MethodHandle setTimeout;
    final MethodHandle setDircache;
    final MethodHandle setAutoreconnect;
    final MethodHandle create;
    final MethodHandle open;
    final MethodHandle close;
    final MethodHandle pread;
    final MethodHandle pwrite;
    final MethodHandle fsync;
    final MethodHandle lstat64;
    final MethodHandle link;
    final MethodHandle rename;
    final MethodHandle unlink;
    final MethodHandle mkdir2;
    final MethodHandle rmdir;
    final MethodHandle opendir;
    final MethodHandle readdir;
    final MethodHandle closedir;
    final MethodHandle readmax;
    final MethodHandle writemax;
    final MethodHandle fstat64;
    final MethodHandle chmod;
    final MethodHandle getRpcContext;
    final MethodHandle getFh;
    final MethodHandle rpcNfs3CreateAsync;
    final MethodHandle rpcGetFd;
    final MethodHandle rpcWhichEvents;
    final MethodHandle rpcService;
    final MethodHandle rpcGetError;
    final MethodHandle nfsstat3ToErrno;
    final MethodHandle nfsstat3ToStr;
    final MethodHandle poll;
    /** The rpc_cb function pointer of every raw RPC: {@link NfsClient#onRawReply}. */
    final MemorySegment rawCallback;

    static Lib get() {
      Lib l = instance;
      if (l == null) {
        synchronized (Lib.class) {
          if (instance == null) {
            instance = new Lib();
          }
          l = instance;
        }
      }
      return l;
    }

    private Lib() {
      SymbolLookup nfs;
      try {
        nfs = SymbolLookup.libraryLookup("libnfs.so.13", Arena.global());
      } catch (IllegalArgumentException e) {
        throw new IllegalStateException("cannot load libnfs.so.13, needed for nfs:// shared storage: "
            + "install Debian's libnfs13 (scripts/setup does)", e);
      }
      ValueLayout.OfInt i = ValueLayout.JAVA_INT;
      ValueLayout.OfLong l = ValueLayout.JAVA_LONG;
      AddressLayout p = ValueLayout.ADDRESS;
      initContext = h(nfs, "nfs_init_context", FunctionDescriptor.of(p));
      destroyContext = h(nfs, "nfs_destroy_context", FunctionDescriptor.ofVoid(p));
      mount = h(nfs, "nfs_mount", FunctionDescriptor.of(i, p, p, p));
      getError = h(nfs, "nfs_get_error", FunctionDescriptor.of(p, p));
      setTimeout = h(nfs, "nfs_set_timeout", FunctionDescriptor.ofVoid(p, i));
      setDircache = h(nfs, "nfs_set_dircache", FunctionDescriptor.ofVoid(p, i));
      setAutoreconnect = h(nfs, "nfs_set_autoreconnect", FunctionDescriptor.ofVoid(p, i));
      create = h(nfs, "nfs_create", FunctionDescriptor.of(i, p, p, i, i, p));
      open = h(nfs, "nfs_open", FunctionDescriptor.of(i, p, p, i, p));
      close = h(nfs, "nfs_close", FunctionDescriptor.of(i, p, p));
      pread = h(nfs, "nfs_pread", FunctionDescriptor.of(i, p, p, l, l, p));
      pwrite = h(nfs, "nfs_pwrite", FunctionDescriptor.of(i, p, p, l, l, p));
      fsync = h(nfs, "nfs_fsync", FunctionDescriptor.of(i, p, p));
      lstat64 = h(nfs, "nfs_lstat64", FunctionDescriptor.of(i, p, p, p));
      link = h(nfs, "nfs_link", FunctionDescriptor.of(i, p, p, p));
      rename = h(nfs, "nfs_rename", FunctionDescriptor.of(i, p, p, p));
      unlink = h(nfs, "nfs_unlink", FunctionDescriptor.of(i, p, p));
      mkdir2 = h(nfs, "nfs_mkdir2", FunctionDescriptor.of(i, p, p, i));
      rmdir = h(nfs, "nfs_rmdir", FunctionDescriptor.of(i, p, p));
      opendir = h(nfs, "nfs_opendir", FunctionDescriptor.of(i, p, p, p));
      readdir = h(nfs, "nfs_readdir", FunctionDescriptor.of(p, p, p));
      closedir = h(nfs, "nfs_closedir", FunctionDescriptor.ofVoid(p, p));
      readmax = h(nfs, "nfs_get_readmax", FunctionDescriptor.of(l, p));
      writemax = h(nfs, "nfs_get_writemax", FunctionDescriptor.of(l, p));
      fstat64 = h(nfs, "nfs_fstat64", FunctionDescriptor.of(i, p, p, p));
      chmod = h(nfs, "nfs_lchmod", FunctionDescriptor.of(i, p, p, i)); // does not follow a symlink
      // The raw RPC layer (nfsc/libnfs-raw.h, nfsc/libnfs-raw-nfs.h).
      getRpcContext = h(nfs, "nfs_get_rpc_context", FunctionDescriptor.of(p, p));
      getFh = h(nfs, "nfs_get_fh", FunctionDescriptor.of(p, p));
      rpcNfs3CreateAsync = h(nfs, "rpc_nfs3_create_async", FunctionDescriptor.of(i, p, p, p, p));
      rpcGetFd = h(nfs, "rpc_get_fd", FunctionDescriptor.of(i, p));
      rpcWhichEvents = h(nfs, "rpc_which_events", FunctionDescriptor.of(i, p));
      rpcService = h(nfs, "rpc_service", FunctionDescriptor.of(i, p, i));
      rpcGetError = h(nfs, "rpc_get_error", FunctionDescriptor.of(p, p));
      nfsstat3ToErrno = h(nfs, "nfsstat3_to_errno", FunctionDescriptor.of(i, i));
      nfsstat3ToStr = h(nfs, "nfsstat3_to_str", FunctionDescriptor.of(p, i));
      Linker linker = Linker.nativeLinker();
      poll = linker.downcallHandle(linker.defaultLookup().find("poll").orElseThrow(
          () -> new IllegalStateException("the C library has no poll()")), FunctionDescriptor.of(i, p, l, i));
      try {
        MethodHandle cb = MethodHandles.lookup().findStatic(NfsClient.class, "onRawReply",
            MethodType.methodType(void.class, MemorySegment.class, int.class, MemorySegment.class, MemorySegment.class));
        rawCallback = linker.upcallStub(cb, FunctionDescriptor.ofVoid(p, i, p, p), Arena.global());
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("cannot bind the libnfs RPC callback", e);
      }
    }

    private static MethodHandle h(SymbolLookup lib, String name, FunctionDescriptor fd) {
      MemorySegment sym = lib.find(name).orElseThrow(() -> new IllegalStateException(
          "libnfs.so.13 has no " + name + " (qemu-ft needs libnfs 4.0 or newer)"));
      return Linker.nativeLinker().downcallHandle(sym, fd);
    }
  }
}
