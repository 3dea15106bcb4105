package org.qemuft.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributeView;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * A directory of the local file system: on production hosts, a kernel NFS mount of the shared
 * export. Every call runs on a helper thread and counts as NO_ANSWER if it takes longer than the
 * RPC timeout: a hard NFS mount can block a system call for as long as the server is away, and
 * the caller must not block with it. (A call that timed out may still complete later; every
 * operation built on these is safe against that, see RetryingStorage.)
 */
final class DirectoryBackend implements Backend {
  private final Path root;
  private final Duration rpcTimeout;
  private final ExecutorService calls = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "shared-storage-fs-call");
    t.setDaemon(true);
    return t;
  });

  DirectoryBackend(Path root, Duration rpcTimeout) {
    this.root = root.toAbsolutePath().normalize();
    this.rpcTimeout = rpcTimeout;
  }

  @Override
  public String kind() {
    return "mounted directory";
  }

  @Override
  public String location() {
    return root.toString();
  }

  @Override
  public Optional<Id> stat(String name) throws Failure {
    return call("stat", name, () -> {
      try {
        Map<String, Object> a = Files.readAttributes(path(name),
            "unix:ino,nlink,mode,size,lastAccessTime,lastModifiedTime", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        return Optional.of(new Id((Long) a.get("ino"), ((Integer) a.get("nlink")).longValue(),
            (mode & 0170000) == 0040000, (Long) a.get("size"), seconds(a.get("lastAccessTime")),
            seconds(a.get("lastModifiedTime"))));
      } catch (NoSuchFileException e) {
        return Optional.empty();
      }
    });
  }

  @Override
  public void createFile(String name, byte[] data) throws Failure {
    call("create", name, () -> {
      Path p = path(name);
      try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
          LinkOption.NOFOLLOW_LINKS)) {
        ByteBuffer b = ByteBuffer.wrap(data);
        while (b.hasRemaining()) {
          ch.write(b);
        }
        ch.force(true);
      }
      return null;
    });
  }

  /**
   * open(O_CREAT|O_EXCL) (what a kernel NFS client sends as an NFSv3 CREATE EXCLUSIVE with a
   * verifier of its own, or an NFSv4 OPEN with EXCLUSIVE4 / EXCLUSIVE4_1), then the verifier is
   * stamped into the new file's atime and mtime the way ganesha stores it. On EEXIST a file that
   * is empty and holds this verifier was made by an earlier call with it (whose answer was lost
   * or timed out): that counts as success, as a server counts a retransmission. Create and stamp
   * run in one helper-thread call, so a call that timed out still stamps when it completes.
   */
  @Override
  public void createExclusive(String name, byte[] verifier) throws Failure {
    FileTime atime = FileTime.from(Verifiers.atimeSeconds(verifier), TimeUnit.SECONDS);
    FileTime mtime = FileTime.from(Verifiers.mtimeSeconds(verifier), TimeUnit.SECONDS);
    call("create exclusive", name, () -> {
      Path p = path(name);
      try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
          LinkOption.NOFOLLOW_LINKS)) {
        Files.getFileAttributeView(p, BasicFileAttributeView.class, LinkOption.NOFOLLOW_LINKS)
            .setTimes(mtime, atime, null);
        ch.force(true);
      } catch (FileAlreadyExistsException e) {
        Map<String, Object> a = Files.readAttributes(p, "unix:mode,size,lastAccessTime,lastModifiedTime",
            LinkOption.NOFOLLOW_LINKS);
        boolean regular = ((Integer) a.get("mode") & 0170000) == 0100000;
        if (regular && (Long) a.get("size") == 0 && seconds(a.get("lastAccessTime")) == seconds(atime)
            && seconds(a.get("lastModifiedTime")) == seconds(mtime)) {
          return null;
        }
        throw e;
      }
      syncDir(p.getParent());
      return null;
    });
  }

  @Override
  public void writeInto(String name, byte[] data) throws Failure {
    call("write", name, () -> {
      try (FileChannel ch = FileChannel.open(path(name), StandardOpenOption.WRITE, LinkOption.NOFOLLOW_LINKS)) {
        ByteBuffer b = ByteBuffer.wrap(data);
        while (b.hasRemaining()) {
          ch.write(b, b.position());
        }
        ch.force(true);
      }
      return null;
    });
  }

  @Override
  public void rename(String from, String to) throws Failure {
    call("rename " + from + " ->", to, () -> {
      Files.move(path(from), path(to), StandardCopyOption.ATOMIC_MOVE);
      syncDir(path(to).getParent());
      return null;
    });
  }

  @Override
  public Optional<byte[]> read(String name, int maxBytes) throws Failure {
    return call("read", name, () -> {
      try (FileChannel ch = FileChannel.open(path(name), StandardOpenOption.READ, LinkOption.NOFOLLOW_LINKS)) {
        if (ch.size() > maxBytes) {
          throw new FileSystemException(path(name).toString(), null,
              "file is larger than the " + maxBytes + " bytes allowed here");
        }
        ByteBuffer b = ByteBuffer.allocate((int) ch.size());
        while (b.hasRemaining() && ch.read(b) >= 0) {
          // read until full or end of file
        }
        return Optional.of(b.flip().remaining() == b.capacity() ? b.array() : java.util.Arrays.copyOf(b.array(), b.limit()));
      } catch (NoSuchFileException e) {
        return Optional.empty();
      } catch (AccessDeniedException e) {
        // A file just made by an exclusive create over NFS may have the server's default mode
        // (the Linux server: 0) until the kernel client sets it; while empty, nothing to read.
        Map<String, Object> a = Files.readAttributes(path(name), "unix:mode,size", LinkOption.NOFOLLOW_LINKS);
        if (((Integer) a.get("mode") & 0170000) == 0100000 && (Long) a.get("size") == 0) {
          return Optional.of(new byte[0]);
        }
        throw e;
      }
    });
  }

  @Override
  public void unlink(String name) throws Failure {
    call("remove", name, () -> {
      Path p = path(name);
      if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
        throw new FileSystemException(p.toString(), null, "is a directory");
      }
      Files.delete(p);
      return null;
    });
  }

  @Override
  public void mkdir(String name) throws Failure {
    call("mkdir", name, () -> {
      Files.createDirectory(path(name));
      return null;
    });
  }

  @Override
  public void rmdir(String name) throws Failure {
    call("rmdir", name, () -> {
      Path p = path(name);
      if (!Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS) && Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
        throw new FileSystemException(p.toString(), null, "is not a directory");
      }
      Files.delete(p);
      return null;
    });
  }

  @Override
  public Optional<List<String>> list(String dir) throws Failure {
    return call("list", dir, () -> {
      try (Stream<Path> s = Files.list(dir.isEmpty() ? root : path(dir))) {
        List<String> names = new ArrayList<>();
        s.forEach(p -> names.add(p.getFileName().toString()));
        return Optional.of(names);
      } catch (NoSuchFileException e) {
        return Optional.empty();
      }
    });
  }

  @Override
  public String qemuLocation(String name) {
    return path(name).toString();
  }

  @Override
  public void reset() {
    // No connection to drop: the kernel owns it.
  }

  @Override
  public void close() {
    calls.shutdownNow();
  }

  private Path path(String name) {
    return root.resolve(name);
  }

  private static long seconds(Object fileTime) {
    return ((FileTime) fileTime).to(TimeUnit.SECONDS);
  }

  private static void syncDir(Path dir) throws IOException {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    }
  }

  private <T> T call(String op, String name, Callable<T> body) throws Failure {
    Future<T> f = calls.submit(body);
    String what = op + " " + name + " in " + root;
    try {
      return f.get(rpcTimeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (TimeoutException e) {
      f.cancel(true);
      throw new Failure(Failure.Kind.NO_ANSWER, what + " got no answer within " + rpcTimeout.toMillis()
          + " ms (is the NFS server behind this mount up?)", e);
    } catch (InterruptedException e) {
      f.cancel(true);
      Thread.currentThread().interrupt();
      throw new Failure(Failure.Kind.NO_ANSWER, what + " was interrupted", e);
    } catch (ExecutionException e) {
      Throwable c = e.getCause();
      Failure.Kind k;
      if (c instanceof FileAlreadyExistsException) {
        k = Failure.Kind.EXISTS;
      } else if (c instanceof NoSuchFileException) {
        k = Failure.Kind.NOT_FOUND;
      } else if (c instanceof DirectoryNotEmptyException) {
        k = Failure.Kind.NOT_EMPTY;
      } else if (c instanceof AccessDeniedException) {
        k = Failure.Kind.OTHER;
      } else if (c instanceof FileSystemException fse && fse.getReason() != null
          && (fse.getReason().contains("timed out") || fse.getReason().contains("Input/output error")
              || fse.getReason().contains("Stale file handle"))) {
        k = Failure.Kind.NO_ANSWER;
      } else {
        k = Failure.Kind.OTHER;
      }
      throw new Failure(k, what + " failed: " + c, c);
    }
  }
}
