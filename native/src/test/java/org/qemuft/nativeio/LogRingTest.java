package org.qemuft.nativeio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** LogRing on its own and between two threads of one JVM (ShimStreamTest covers processes). */
@Timeout(120)
class LogRingTest {
  private static final Duration LONG = Duration.ofSeconds(60);

  private Path dir;
  private ExecutorService pool;

  @BeforeEach
  void setUp() throws IOException {
    dir = RingFiles.tempDir();
    pool = Executors.newCachedThreadPool();
  }

  @AfterEach
  void tearDown() throws IOException {
    pool.shutdownNow();
    RingFiles.delete(dir);
  }

  static byte pattern(long p) {
    return (byte) (p * 7 + 3);
  }

  @Test
  void aNewRingIsEmptyAndOpenSeesTheSameHeader() throws Exception {
    Path f = dir.resolve("qemuft-new");
    try (LogRing r = LogRing.create(f, 8192)) {
      assertThat(r.capacity()).isEqualTo(8192);
      assertThat(r.writePosition()).isZero();
      assertThat(r.readPosition()).isZero();
      assertThat(r.writerClosed()).isFalse();
      assertThat(r.readerClosed()).isFalse();
      assertThat(Files.size(f)).isEqualTo(LogRing.HEADER_SIZE + 8192);
      assertThat(Files.getPosixFilePermissions(f).toString()).isEqualTo("[OWNER_READ, OWNER_WRITE]");
      try (LogRing o = LogRing.open(f)) {
        assertThat(o.capacity()).isEqualTo(8192);
        assertThat(r.write(new byte[] {1, 2, 3}, 0, 3, Duration.ZERO)).isEqualTo(3);
        assertThat(o.writePosition()).isEqualTo(3);
        byte[] b = new byte[10];
        assertThat(o.read(b, 0, 10)).isEqualTo(3);
        assertThat(r.readPosition()).isEqualTo(3);
      }
    }
  }

  @Test
  void twoThreadsStreamThroughASmallRingAcrossManyLaps() throws Exception {
    Path f = dir.resolve("qemuft-laps");
    long total = 16L << 20;
    try (LogRing w = LogRing.create(f, 4096); LogRing r = LogRing.open(f)) {
      Future<Long> producer = pool.submit(() -> {
        SplittableRandom rnd = new SplittableRandom(1);
        byte[] buf = new byte[6000];
        long p = 0;
        while (p < total) {
          int n = (int) Math.min(total - p, 1 + rnd.nextInt(buf.length));
          for (int i = 0; i < n; i++) {
            buf[i] = pattern(p + i);
          }
          int done = 0;
          while (done < n) {
            done += w.write(buf, done, n - done, LONG);
          }
          p += n;
        }
        w.closeWriter();
        return p;
      });
      SplittableRandom rnd = new SplittableRandom(2);
      byte[] buf = new byte[5000];
      long p = 0;
      while (true) {
        assertThat(r.awaitReadable(LONG)).isTrue();
        int n = r.read(buf, 0, 1 + rnd.nextInt(buf.length));
        if (n < 0) {
          break;
        }
        for (int i = 0; i < n; i++) {
          if (buf[i] != pattern(p + i)) {
            throw new AssertionError("byte " + (p + i) + " is " + buf[i]);
          }
        }
        p += n;
      }
      assertThat(producer.get()).isEqualTo(total);
      assertThat(p).isEqualTo(total);
      assertThat(r.writePosition()).isEqualTo(total);
      assertThat(r.readPosition()).isEqualTo(total);
    }
  }

  @Test
  void byteBuffersHeapAndDirectReadAcrossTheWrap() throws Exception {
    Path f = dir.resolve("qemuft-bb");
    try (LogRing r = LogRing.create(f, 4096)) {
      byte[] fill = new byte[4000];
      assertThat(r.write(fill, 0, fill.length, Duration.ZERO)).isEqualTo(4000);
      assertThat(r.read(new byte[4000], 0, 4000)).isEqualTo(4000);
      byte[] data = new byte[200];
      for (int i = 0; i < data.length; i++) {
        data[i] = pattern(i);
      }
      assertThat(r.write(data, 0, 200, Duration.ZERO)).isEqualTo(200); // wraps at 4096
      ByteBuffer direct = ByteBuffer.allocateDirect(150);
      assertThat(r.read(direct)).isEqualTo(150);
      assertThat(direct.position()).isEqualTo(150);
      ByteBuffer heap = ByteBuffer.allocate(100);
      heap.position(10);
      assertThat(r.read(heap)).isEqualTo(50);
      assertThat(heap.position()).isEqualTo(60);
      for (int i = 0; i < 150; i++) {
        assertThat(direct.get(i)).isEqualTo(pattern(i));
      }
      for (int i = 0; i < 50; i++) {
        assertThat(heap.get(10 + i)).isEqualTo(pattern(150 + i));
      }
      assertThat(r.read(heap)).isZero();
    }
  }

  @Test
  void aFullRingBlocksTheWriterUntilTheTimeoutThenUntilTheReaderMakesRoom() throws Exception {
    Path f = dir.resolve("qemuft-full");
    try (LogRing w = LogRing.create(f, 4096); LogRing r = LogRing.open(f)) {
      byte[] b = new byte[5000];
      long t0 = System.nanoTime();
      assertThat(w.write(b, 0, 5000, Duration.ofMillis(300))).isEqualTo(4096);
      assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(250_000_000L);
      assertThat(w.awaitWritable(Duration.ofMillis(50))).isFalse();
      assertThat(w.write(b, 0, 1, Duration.ZERO)).isZero();

      CountDownLatch started = new CountDownLatch(1);
      Future<Integer> blocked = pool.submit(() -> {
        started.countDown();
        return w.write(b, 0, 904, LONG);
      });
      started.await();
      Thread.sleep(200);
      assertThat(blocked.isDone()).isFalse();
      assertThat(r.read(new byte[1000], 0, 1000)).isEqualTo(1000);
      assertThat(blocked.get(30, TimeUnit.SECONDS)).isEqualTo(904);
      assertThat(w.writePosition()).isEqualTo(5000);
    }
  }

  @Test
  void aHeldWriterWaitsWhateverRoomThereIsUntilTheReaderReleasesIt() throws Exception {
    Path f = dir.resolve("qemuft-held");
    try (LogRing w = LogRing.create(f, 4096); LogRing r = LogRing.open(f)) {
      byte[] b = new byte[100];
      r.holdWriter(true);
      assertThat(w.writerHeld()).isTrue();
      assertThat(w.write(b, 0, 100, Duration.ofMillis(100))).isZero();
      assertThat(w.awaitWritable(Duration.ofMillis(50))).isFalse();
      Future<Integer> blocked = pool.submit(() -> w.write(b, 0, 100, LONG));
      Thread.sleep(200);
      assertThat(blocked.isDone()).isFalse();
      r.holdWriter(false);
      assertThat(blocked.get(30, TimeUnit.SECONDS)).isEqualTo(100);
      assertThat(w.writerHeld()).isFalse();
      assertThat(r.readable()).isEqualTo(100);
    }
  }

  @Test
  void anEmptyRingMakesTheReaderWaitUntilSomethingIsWritten() throws Exception {
    Path f = dir.resolve("qemuft-empty");
    try (LogRing w = LogRing.create(f, 4096); LogRing r = LogRing.open(f)) {
      assertThat(r.read(new byte[10], 0, 10)).isZero();
      assertThat(r.awaitReadable(Duration.ofMillis(100))).isFalse();
      CountDownLatch started = new CountDownLatch(1);
      Future<Boolean> waiting = pool.submit(() -> {
        started.countDown();
        return r.awaitReadable(LONG);
      });
      started.await();
      Thread.sleep(200);
      assertThat(waiting.isDone()).isFalse();
      w.write(new byte[] {42}, 0, 1, Duration.ZERO);
      assertThat(waiting.get(30, TimeUnit.SECONDS)).isTrue();
      byte[] one = new byte[1];
      assertThat(r.read(one, 0, 1)).isEqualTo(1);
      assertThat(one[0]).isEqualTo((byte) 42);
    }
  }

  @Test
  void aReaderWaitingForABatchIsWokenByTheBatchOrItsTimeout() throws Exception {
    Path f = dir.resolve("qemuft-batch");
    try (LogRing w = LogRing.create(f, 8192); LogRing r = LogRing.open(f)) {
      Future<Boolean> waiting = pool.submit(() -> r.awaitReadable(1000, LONG));
      Thread.sleep(100);
      w.write(new byte[10], 0, 10, Duration.ZERO);
      Thread.sleep(300);
      assertThat(waiting.isDone()).as("10 bytes are not the batch of 1000").isFalse();
      w.write(new byte[990], 0, 990, Duration.ZERO);
      assertThat(waiting.get(30, TimeUnit.SECONDS)).isTrue();
      assertThat(r.read(new byte[2000], 0, 2000)).isEqualTo(1000);

      w.write(new byte[5], 0, 5, Duration.ZERO);
      long t0 = System.nanoTime();
      assertThat(r.awaitReadable(1000, Duration.ofMillis(200))).as("a trickle after the delay").isTrue();
      assertThat(System.nanoTime() - t0).isGreaterThanOrEqualTo(150_000_000L);
      assertThat(r.read(new byte[10], 0, 10)).isEqualTo(5);
      assertThat(r.awaitReadable(1000, Duration.ofMillis(50))).isFalse();
      // Larger than half the ring: capped, so a full ring always satisfies it.
      w.write(new byte[4096], 0, 4096, Duration.ZERO);
      assertThat(r.awaitReadable(1 << 20, Duration.ofSeconds(30))).isTrue();
    }
  }

  @Test
  void wakeReaderEndsABatchWaitAtOnceWithWhatThereIs() throws Exception {
    Path f = dir.resolve("qemuft-wake");
    try (LogRing w = LogRing.create(f, 8192); LogRing r = LogRing.open(f)) {
      r.wakeReader(); // nobody waits: not remembered
      Future<Boolean> empty = pool.submit(() -> r.awaitReadable(1000, LONG));
      Thread.sleep(200);
      assertThat(empty.isDone()).as("a wake before the wait does not end it").isFalse();
      r.wakeReader();
      assertThat(empty.get(30, TimeUnit.SECONDS)).as("woken with nothing to read").isFalse();

      w.write(new byte[10], 0, 10, Duration.ZERO);
      Future<Boolean> trickle = pool.submit(() -> r.awaitReadable(1000, LONG));
      Thread.sleep(200);
      assertThat(trickle.isDone()).as("10 bytes are not the batch of 1000").isFalse();
      r.wakeReader();
      assertThat(trickle.get(30, TimeUnit.SECONDS)).as("woken with 10 bytes to read").isTrue();
      assertThat(r.read(new byte[100], 0, 100)).isEqualTo(10);
    }
  }

  @Test
  void aClosedWriterEndsTheStreamAfterTheLastByte() throws Exception {
    Path f = dir.resolve("qemuft-wclosed");
    try (LogRing w = LogRing.create(f, 4096); LogRing r = LogRing.open(f)) {
      Future<Boolean> waiting = pool.submit(() -> r.awaitReadable(LONG));
      Thread.sleep(100);
      w.write(new byte[] {1, 2}, 0, 2, Duration.ZERO);
      w.closeWriter();
      assertThat(waiting.get(30, TimeUnit.SECONDS)).isTrue();
      assertThat(r.writerClosed()).isTrue();
      assertThat(r.read(new byte[10], 0, 10)).isEqualTo(2);
      assertThat(r.read(new byte[10], 0, 10)).isEqualTo(-1);
      assertThat(r.awaitReadable(Duration.ZERO)).isTrue();
      assertThatThrownBy(() -> w.write(new byte[1], 0, 1, Duration.ZERO))
          .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed the stream");
    }
  }

  @Test
  void aClosedReaderFailsAWriterThatWaitsForRoom() throws Exception {
    Path f = dir.resolve("qemuft-rclosed");
    try (LogRing w = LogRing.create(f, 4096); LogRing r = LogRing.open(f)) {
      Future<Integer> blocked = pool.submit(() -> w.write(new byte[6000], 0, 6000, LONG));
      Thread.sleep(200);
      r.read(new byte[1], 0, 1); // claims the reader role for this process
      r.closeReader();
      assertThatThrownBy(() -> blocked.get(30, TimeUnit.SECONDS))
          .hasCauseInstanceOf(IOException.class)
          .hasMessageContaining("has closed it")
          .hasMessageContaining("bytes were not delivered");
      assertThat(w.readerClosed()).isTrue();
    }
  }

  @Test
  void waitsEndOnInterruptAndOnClose() throws Exception {
    Path f = dir.resolve("qemuft-intr");
    LogRing r = LogRing.create(f, 4096);
    try {
      CompletableFuture<Throwable> outcome = new CompletableFuture<>();
      Thread t = Thread.ofPlatform().start(() -> {
        try {
          r.awaitReadable(LONG);
          outcome.complete(null);
        } catch (Throwable e) {
          outcome.complete(e);
        }
      });
      Thread.sleep(200);
      t.interrupt();
      assertThat(outcome.get(5, TimeUnit.SECONDS)).isInstanceOf(InterruptedException.class);

      CompletableFuture<Throwable> onClose = new CompletableFuture<>();
      Thread.ofPlatform().start(() -> {
        try {
          r.awaitReadable(LONG);
          onClose.complete(null);
        } catch (Throwable e) {
          onClose.complete(e);
        }
      });
      Thread.sleep(200);
      long t0 = System.nanoTime();
      r.close();
      assertThat(onClose.get(5, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
          .hasMessageContaining("closed");
      assertThat(System.nanoTime() - t0).isLessThan(TimeUnit.SECONDS.toNanos(3));
      assertThatThrownBy(r::writePosition).isInstanceOf(IllegalStateException.class);
      r.close(); // idempotent
    } finally {
      r.close();
    }
  }

  @Test
  void aSecondWriterProcessIsRefusedByTheRecordedPid() throws Exception {
    Path f = dir.resolve("qemuft-claim");
    try (LogRing r = LogRing.create(f, 4096)) {
      patchInt(f, LogRing.OFF_WRITER_PID, 1); // pid 1 "owns" the writer role
      assertThatThrownBy(() -> r.write(new byte[1], 0, 1, Duration.ZERO))
          .isInstanceOf(IOException.class)
          .hasMessageContaining(f.toString())
          .hasMessageContaining("already has a writer (pid 1)");
      assertThat(r.read(new byte[1], 0, 1)).isZero(); // the reader role is free
    }
  }

  @Test
  void badRingFilesAreRefusedNamingTheFileAndTheReason() throws Exception {
    Path f = dir.resolve("qemuft-bad");
    LogRing.create(f, 4096).close();

    patchLong(f, LogRing.OFF_MAGIC, 0x1234);
    assertOpenFails(f, "not a qemu-ft log ring");
    patchLong(f, LogRing.OFF_MAGIC, LogRing.MAGIC);

    patchInt(f, LogRing.OFF_FORMAT, 9);
    assertOpenFails(f, "ring format 9");
    patchInt(f, LogRing.OFF_FORMAT, LogRing.FORMAT);

    patchInt(f, LogRing.OFF_REPLAY_VERSION, 0x00e0200b);
    assertOpenFails(f, "replay log version 0x00e0200b");
    patchInt(f, LogRing.OFF_REPLAY_VERSION, LogRing.REPLAY_VERSION);

    patchLong(f, LogRing.OFF_CAPACITY, 8192);
    assertOpenFails(f, "capacity 8192 does not fit the file size 8192");
    patchLong(f, LogRing.OFF_CAPACITY, 4096);

    patchLong(f, LogRing.OFF_WRITE_POS, 10_000);
    assertOpenFails(f, "positions are inconsistent");
    patchLong(f, LogRing.OFF_WRITE_POS, 0);

    LogRing.open(f).close(); // repaired

    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
      ch.truncate(5000);
    }
    assertOpenFails(f, "too small");
    assertOpenFails(dir.resolve("qemuft-missing"), "does not exist");
  }

  @Test
  void createRefusesAnExistingFileAndAnOddCapacity() throws Exception {
    Path f = dir.resolve("qemuft-exists");
    Files.writeString(f, "someone else's");
    assertThatThrownBy(() -> LogRing.create(f, 4096)).isInstanceOf(IOException.class)
        .hasMessageContaining(f.toString()).hasMessageContaining("already exists");
    assertThat(Files.readString(f)).isEqualTo("someone else's");
    assertThatThrownBy(() -> LogRing.create(dir.resolve("qemuft-odd"), 5000))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("power of two");
    assertThatThrownBy(() -> LogRing.create(dir.resolve("qemuft-tiny"), 2048))
        .isInstanceOf(IllegalArgumentException.class);
  }

  private static void assertOpenFails(Path f, String reason) {
    assertThatThrownBy(() -> LogRing.open(f)).isInstanceOf(IOException.class)
        .hasMessageContaining(f.toString()).hasMessageContaining(reason);
  }

  static void patchInt(Path f, long off, int v) throws IOException {
    patch(f, off, ByteBuffer.allocate(4).order(ByteOrder.nativeOrder()).putInt(0, v));
  }

  static void patchLong(Path f, long off, long v) throws IOException {
    patch(f, off, ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(0, v));
  }

  private static void patch(Path f, long off, ByteBuffer b) throws IOException {
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
      ch.write(b, off);
    }
  }

  /** Ring files for tests: a private directory in /dev/shm, removed afterwards. */
  static final class RingFiles {
    private RingFiles() {}

    static Path tempDir() throws IOException {
      return Files.createTempDirectory(Path.of("/dev/shm"), "qemuft-test-");
    }

    static void delete(Path dir) throws IOException {
      if (dir == null || !Files.exists(dir)) {
        return;
      }
      try (Stream<Path> s = Files.walk(dir)) {
        for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
  }
}
