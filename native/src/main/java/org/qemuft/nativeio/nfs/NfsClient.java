package org.qemuft.nativeio.nfs;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
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
 */
public final class NfsClient implements AutoCloseable {
  /** Linux open(2) flags as libnfs expects them. */
  private static final int O_RDONLY = 0;
  private static final int O_EXCL = 0200;
  private static final int O_NOFOLLOW = 0400000;
  /** The largest READ/WRITE this client sends, below the server's own maximum. */
  private static final int MAX_CHUNK = 1 << 20;

  private final String server;
  private final String export;
  private final String target;
  private final ReentrantLock lock = new ReentrantLock();
  private MemorySegment ctx;

  private NfsClient(String server, String export, MemorySegment ctx) {
    this.server = server;
    this.export = export;
    this.target = "nfs://" + server + export;
    this.ctx = ctx;
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
    NfsClient c = new NfsClient(server, export, ctx);
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
      MemorySegment st = a.allocate(Lib.STAT64_SIZE, 8);
      check((int) lib.lstat64.invokeExact(ctx(), a.allocateFrom(abs(path)), st), "stat", path);
      return new NfsStat(st.get(ValueLayout.JAVA_LONG, 8), (int) st.get(ValueLayout.JAVA_LONG, 16),
          st.get(ValueLayout.JAVA_LONG, 24), st.get(ValueLayout.JAVA_LONG, 56),
          st.get(ValueLayout.JAVA_LONG, 88) * 1_000_000_000L + st.get(ValueLayout.JAVA_LONG, 112));
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
      check((int) lib.open.invokeExact(ctx(), a.allocateFrom(abs(path)), O_RDONLY | O_NOFOLLOW, fhp), "open", path);
      MemorySegment fh = fhp.get(ValueLayout.ADDRESS, 0);
      try {
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
      MemorySegment fh = fhp.get(ValueLayout.ADDRESS, 0);
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
      return null;
    });
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

  /** The downcall handles, bound once on first use. */
  private static final class Lib {
    /** sizeof(struct nfs_stat_64): 17 uint64_t. */
    static final long STAT64_SIZE = 17 * 8;
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
    }

    private static MethodHandle h(SymbolLookup lib, String name, FunctionDescriptor fd) {
      MemorySegment sym = lib.find(name).orElseThrow(() -> new IllegalStateException(
          "libnfs.so.13 has no " + name + " (qemu-ft needs libnfs 4.0 or newer)"));
      return Linker.nativeLinker().downcallHandle(sym, fd);
    }
  }
}
