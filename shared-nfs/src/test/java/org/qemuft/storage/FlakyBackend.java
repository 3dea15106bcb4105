package org.qemuft.storage;

import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A hostile wrapper around a real backend: a chosen operation is carried out but its answer is
 * "lost" (NO_ANSWER) a given number of times, or the storage goes silent altogether.
 */
final class FlakyBackend implements Backend {
  private final Backend real;
  volatile String loseReplyOf = "";
  final AtomicInteger repliesToLose = new AtomicInteger();
  volatile boolean silent;
  /** After losing a reply, go silent (the server died right after doing the work). */
  volatile boolean silentAfterLoss;
  final AtomicInteger calls = new AtomicInteger();
  /**
   * Exclusive creates that are carried out but answered EXISTS, as nfs-ganesha can answer a
   * repeated create that races with the first one (both look the name up before either creates).
   */
  final AtomicInteger createsAnsweredExists = new AtomicInteger();

  FlakyBackend(Backend real) {
    this.real = real;
  }

  private void before() throws Failure {
    calls.incrementAndGet();
    if (silent) {
      throw new Failure(Failure.Kind.NO_ANSWER, "test: storage is silent", null);
    }
  }

  private void after(String op) throws Failure {
    if (op.equals(loseReplyOf) && repliesToLose.getAndDecrement() > 0) {
      silent = silentAfterLoss;
      throw new Failure(Failure.Kind.NO_ANSWER, "test: reply of " + op + " lost", null);
    }
  }

  @Override public String kind() { return "flaky " + real.kind(); }
  @Override public String location() { return real.location(); }

  @Override public Optional<Id> stat(String name) throws Failure {
    before(); Optional<Id> r = real.stat(name); after("stat"); return r;
  }
  @Override public void createFile(String name, byte[] data) throws Failure {
    before(); real.createFile(name, data); after("create");
  }
  @Override public void createExclusive(String name, byte[] verifier) throws Failure {
    before();
    real.createExclusive(name, verifier);
    if (createsAnsweredExists.getAndDecrement() > 0) {
      throw new Failure(Failure.Kind.EXISTS, "test: create of " + name + " done but answered EXISTS", null);
    }
    after("createExclusive");
  }
  @Override public void writeInto(String name, byte[] data) throws Failure {
    before(); real.writeInto(name, data); after("writeInto");
  }
  @Override public void rename(String from, String to) throws Failure {
    before(); real.rename(from, to); after("rename");
  }
  @Override public Optional<byte[]> read(String name, int maxBytes) throws Failure {
    before(); Optional<byte[]> r = real.read(name, maxBytes); after("read"); return r;
  }
  @Override public void unlink(String name) throws Failure {
    before(); real.unlink(name); after("unlink");
  }
  @Override public void mkdir(String name) throws Failure {
    before(); real.mkdir(name); after("mkdir");
  }
  @Override public void rmdir(String name) throws Failure {
    before(); real.rmdir(name); after("rmdir");
  }
  @Override public Optional<List<String>> list(String dir) throws Failure {
    before(); Optional<List<String>> r = real.list(dir); after("list"); return r;
  }
  @Override public String qemuLocation(String name) { return real.qemuLocation(name); }
  @Override public void reset() { real.reset(); }
  @Override public void close() { real.close(); }
}
