package org.qemuft.storage;

import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.qemuft.nativeio.nfs.NfsClient;
import org.qemuft.nativeio.nfs.NfsException;

/**
 * {@code nfs://server/export/path} through libnfs (user space, no kernel mount). One NFSv3
 * mount of the directory, made on first use and dropped after any call the server did not answer,
 * so a restarted server is reached with a fresh connection.
 */
final class NfsBackend implements Backend {
  private static final int FILE_MODE = 0644;
  private static final int DIR_MODE = 0755;

  private final String server;
  private final String dir;
  private final Duration rpcTimeout;
  private final Object lock = new Object();
  private NfsClient client;

  private NfsBackend(String server, String dir, Duration rpcTimeout) {
    this.server = server;
    this.dir = dir;
    this.rpcTimeout = rpcTimeout;
  }

  /** Parses {@code nfs://server/abs/path}; does not connect yet. */
  static NfsBackend parse(String location, Duration rpcTimeout) {
    String rest = location.substring("nfs://".length());
    int slash = rest.indexOf('/');
    if (slash <= 0) {
      throw new IllegalArgumentException("shared storage location '" + location
          + "' must look like nfs://SERVER/EXPORTED/DIRECTORY");
    }
    if (rest.contains("?") || rest.contains("#") || rest.contains("@")) {
      throw new IllegalArgumentException("shared storage location '" + location
          + "' must be plain nfs://SERVER/EXPORTED/DIRECTORY (no user, query or fragment)");
    }
    String server = rest.substring(0, slash);
    if (server.contains(":")) {
      throw new IllegalArgumentException("shared storage location '" + location
          + "' names a port; QEMU's nfs:// driver finds ports through the server's rpcbind only,"
          + " so qemu-ft does too: leave the port out");
    }
    String path = rest.substring(slash).replaceAll("/+", "/");
    if (path.length() > 1 && path.endsWith("/")) {
      path = path.substring(0, path.length() - 1);
    }
    for (String part : path.split("/")) {
      if (part.equals("..") || part.equals(".")) {
        throw new IllegalArgumentException("shared storage location '" + location + "' must not contain . or ..");
      }
    }
    return new NfsBackend(server, path, rpcTimeout);
  }

  @Override
  public String kind() {
    return "libnfs";
  }

  @Override
  public String location() {
    return "nfs://" + server + dir;
  }

  @Override
  public Optional<Id> stat(String name) throws Failure {
    try {
      var st = client().stat(name);
      return Optional.of(new Id(st.fileId(), st.links(), st.isDirectory(), st.size(), st.atimeSeconds(),
          st.mtimeSeconds()));
    } catch (NfsException e) {
      if (e.errno() == NfsException.ENOENT) {
        return Optional.empty();
      }
      throw failure(e);
    }
  }

  @Override
  public void createFile(String name, byte[] data) throws Failure {
    run(() -> client().createFile(name, data, FILE_MODE));
  }

  @Override
  public void createExclusive(String name, byte[] verifier) throws Failure {
    run(() -> client().createExclusive(name, verifier));
  }

  @Override
  public void writeInto(String name, byte[] data) throws Failure {
    run(() -> client().writeInto(name, data, FILE_MODE));
  }

  @Override
  public void rename(String from, String to) throws Failure {
    run(() -> client().rename(from, to));
  }

  @Override
  public Optional<byte[]> read(String name, int maxBytes) throws Failure {
    try {
      return Optional.of(client().readFile(name, maxBytes));
    } catch (NfsException e) {
      if (e.errno() == NfsException.ENOENT) {
        return Optional.empty();
      }
      throw failure(e);
    }
  }

  @Override
  public void unlink(String name) throws Failure {
    run(() -> client().unlink(name));
  }

  @Override
  public void mkdir(String name) throws Failure {
    run(() -> client().mkdir(name, DIR_MODE));
  }

  @Override
  public void rmdir(String name) throws Failure {
    run(() -> client().rmdir(name));
  }

  @Override
  public Optional<List<String>> list(String d) throws Failure {
    try {
      return Optional.of(client().list(d.isEmpty() ? "/" : d));
    } catch (NfsException e) {
      if (e.errno() == NfsException.ENOENT) {
        return Optional.empty();
      }
      throw failure(e);
    }
  }

  @Override
  public String qemuLocation(String name) {
    return location() + "/" + name;
  }

  @Override
  public void reset() {
    synchronized (lock) {
      if (client != null) {
        client.close();
        client = null;
      }
    }
  }

  @Override
  public void close() {
    reset();
  }

  private NfsClient client() throws NfsException {
    synchronized (lock) {
      if (client == null) {
        client = NfsClient.mount(server, dir, rpcTimeout);
      }
      return client;
    }
  }

  @FunctionalInterface
  private interface NfsCall {
    void run() throws NfsException;
  }

  private static void run(NfsCall call) throws Failure {
    try {
      call.run();
    } catch (NfsException e) {
      throw failure(e);
    }
  }

  private static Failure failure(NfsException e) {
    Failure.Kind k = switch (e.errno()) {
      case NfsException.EEXIST -> Failure.Kind.EXISTS;
      case NfsException.ENOENT -> Failure.Kind.NOT_FOUND;
      case NfsException.ENOTEMPTY -> Failure.Kind.NOT_EMPTY;
      default -> e.serverAnswered() ? Failure.Kind.OTHER : Failure.Kind.NO_ANSWER;
    };
    String msg = e.getMessage();
    if (e.operation().equals("mount") && e.serverAnswered()) {
      msg += "; does the directory exist on the server, and is it exported to this host (read-write,"
          + " no root squash for root)?";
    }
    return new Failure(k, msg, e);
  }
}
