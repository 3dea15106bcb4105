package org.qemuft.it.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.channel.ChannelListener;
import org.qemuft.controller.channel.ChannelSettings;
import org.qemuft.controller.channel.ChannelStats;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.channel.PeerInfo;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.Guest;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * How fast the logging channel carries a real replay log over loopback TCP, with and without
 * zstd, in small and large frames: raw Mbit/s (log bytes the backup got) and wire Mbit/s (bytes
 * of LOG frames on the wire). Two logs: the test guest's CPU workload, recorded here, and the
 * Linux boot with a disk from module native's test resources. The backup's listener copies each
 * frame into a buffer and acks it at once, as the controller will; a measurement ends when the
 * primary has the ack for its last byte. Variants are interleaved, {@value #ROUNDS} measured
 * rounds after {@value #WARMUP_ROUNDS} warm-up rounds, medians reported. Then the ack round trip
 * of single small frames, the latency the output gate adds to every packet the guest sends.
 */
@Tag("benchmark")
class ChannelBenchmark {
  private static final int WORKLOAD_MIB = 128;
  private static final int WARMUP_ROUNDS = 2;
  private static final int ROUNDS = 7;
  /** Log bytes shipped per measurement (whole passes over the log), so each lasts long enough to time. */
  private static final long BYTES_PER_MEASUREMENT = 96L << 20;
  private static final Duration TIMEOUT = Duration.ofMinutes(5);
  private static final int RTT_SAMPLES = 2000;
  private static final byte[] SECRET = "benchmark secret, 32 bytes long!".getBytes(StandardCharsets.US_ASCII);

  @TempDir Path tmp;

  /** The backup side: copies into a buffer, acks every frame at once. */
  private static final class Backup implements ChannelListener {
    final byte[] buffer = new byte[32 << 20];
    final AtomicLong held = new AtomicLong();
    volatile LogChannel channel;

    @Override
    public void onLog(long offset, byte[] events, int len) {
      System.arraycopy(events, 0, buffer, (int) (offset % (buffer.length - len)), len);
      held.set(offset + len);
      try {
        channel.sendAck(offset + len, offset, 0);
      } catch (IOException e) {
        throw new IllegalStateException("benchmark connection lost: " + e.getMessage(), e);
      }
    }
  }

  /** The primary side: wakes the shipper when the ack it waits for arrives. */
  private static final class Primary implements ChannelListener {
    final Object lock = new Object();
    long acked;
    volatile boolean connected;

    @Override
    public void onConnected(PeerInfo peer) {
      connected = true;
    }

    @Override
    public void onAck(long heldUpTo, long replayedUpTo, long replayIcount) {
      synchronized (lock) {
        acked = heldUpTo;
        lock.notifyAll();
      }
    }

    void awaitAck(long upTo) throws InterruptedException {
      long deadline = System.nanoTime() + TIMEOUT.toNanos();
      synchronized (lock) {
        while (acked < upTo) {
          long left = deadline - System.nanoTime();
          assertThat(left).as("ack for offset %d", upTo).isPositive();
          lock.wait(Math.max(1, left / 1_000_000));
        }
      }
    }
  }

  private record Pair(LogChannel primary, LogChannel backup, Primary p) implements AutoCloseable {
    @Override
    public void close() {
      primary.close("benchmark done");
      backup.close("benchmark done");
    }
  }

  private static Pair connect(boolean compression) throws Exception {
    ChannelSettings s = new ChannelSettings("bench", 1, SECRET, compression, Duration.ofMillis(50), Duration.ofSeconds(10));
    Backup b = new Backup();
    LogChannel backup = LogChannel.listen(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), s, b, b.held::get);
    b.channel = backup;
    Primary p = new Primary();
    LogChannel primary = LogChannel.dial(backup.localAddress(), s, p);
    long deadline = System.nanoTime() + TIMEOUT.toNanos();
    while (!p.connected) {
      assertThat(System.nanoTime()).as("channel connects").isLessThan(deadline);
      Thread.sleep(5);
    }
    return new Pair(primary, backup, p);
  }

  private record Log(String name, byte[] events, Map<Integer, long[]> cuts) {}

  @Test
  void channelThroughput() throws Exception {
    Path recorded = tmp.resolve("replay.bin");
    long start = System.nanoTime();
    try (QemuProcess rec = QemuLaunch.of(Guest.workload(WORKLOAD_MIB), tmp.resolve("rec"), "qft-bench-chan")
        .mode(Mode.RECORD, recorded).start()) {
      rec.awaitSerial("QEMUFT-WORK-DONE", TIMEOUT);
      assertThat(rec.awaitExit(TIMEOUT)).contains(0);
    }
    double recordSeconds = (System.nanoTime() - start) / 1e9;
    byte[] workload = Files.readAllBytes(recorded);
    byte[] boot;
    Path bootLog = Path.of(System.getProperty("qemuft.root"), "native/src/test/resources/org/qemuft/replaylog/linux-boot-blkreplay.bin.gz");
    try (InputStream in = new GZIPInputStream(Files.newInputStream(bootLog))) {
      boot = in.readAllBytes();
    }
    int[] frameSizes = {4096, 65536};
    List<Log> logs = List.of(log("workload", workload, new int[] {1024, 4096, 65536}), log("boot", boot, frameSizes));

    Map<String, List<double[]>> results = new LinkedHashMap<>(); // variant -> [rawMbps, wireMbps, ratio]
    List<String> order = new ArrayList<>();
    List<Double> rttPlain = new ArrayList<>();
    List<Double> rttZstd = new ArrayList<>();
    for (Log l : logs) {
      for (boolean z : new boolean[] {false, true}) {
        for (int f : frameSizes) {
          String v = l.name() + "/" + (z ? "zstd" : "plain") + "/" + (f / 1024) + "KiB";
          order.add(v);
          results.put(v, new ArrayList<>());
        }
      }
    }
    BenchReport report = new BenchReport("channel");
    try (Pair plain = connect(false); Pair zstd = connect(true)) {
      long[] next = {0, 0}; // stream offset of each pair
      for (int round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
        for (int i = 0; i < order.size(); i++) {
          String v = order.get((i + round) % order.size());
          String[] parts = v.split("/");
          Log l = parts[0].equals("workload") ? logs.get(0) : logs.get(1);
          boolean z = parts[1].equals("zstd");
          long[] bounds = l.cuts().get(Integer.parseInt(parts[2].replace("KiB", "")) * 1024);
          Pair pair = z ? zstd : plain;
          int which = z ? 1 : 0;
          int passes = (int) Math.max(1, BYTES_PER_MEASUREMENT / l.events().length);
          ChannelStats before = pair.primary().stats();
          long t0 = System.nanoTime();
          long off = next[which];
          for (int pass = 0; pass < passes; pass++) {
            for (int k = 0; k + 1 < bounds.length; k++) {
              int len = (int) (bounds[k + 1] - bounds[k]);
              pair.primary().sendLog(off, l.events(), (int) bounds[k], len);
              off += len;
            }
          }
          pair.p().awaitAck(off);
          long t1 = System.nanoTime();
          next[which] = off;
          ChannelStats after = pair.primary().stats();
          long raw = after.logBytesRaw() - before.logBytesRaw();
          long wire = after.logBytesWire() - before.logBytesWire();
          assertThat(raw).isEqualTo((long) passes * l.events().length);
          double secs = (t1 - t0) / 1e9;
          if (round >= WARMUP_ROUNDS) {
            results.get(v).add(new double[] {raw * 8 / secs / 1e6, wire * 8 / secs / 1e6, (double) raw / wire});
          }
        }
      }
      // Ack round trip: one small frame (whole events, about 1 KiB), then wait for its ack, as
      // the output gate waits. Interleaved plain/zstd, after the throughput runs (warm).
      long[] small = logs.get(0).cuts().get(1024);
      for (int i = 0; i < 2 * RTT_SAMPLES; i++) {
        boolean z = i % 2 == 1;
        Pair pair = z ? zstd : plain;
        int which = z ? 1 : 0;
        int k = (i / 2) % (small.length - 1);
        int len = (int) (small[k + 1] - small[k]);
        long t0 = System.nanoTime();
        pair.primary().sendLog(next[which], logs.get(0).events(), (int) small[k], len);
        next[which] += len;
        pair.p().awaitAck(next[which]);
        (z ? rttZstd : rttPlain).add((System.nanoTime() - t0) / 1e3);
      }
      assertThat(plain.primary().stats().resets()).isZero();
      assertThat(zstd.primary().stats().resets()).isZero();
    }
    ObjectNode out = report.root();
    ObjectNode cond = report.conditions();
    cond.put("warmupRounds", WARMUP_ROUNDS);
    cond.put("rounds", ROUNDS);
    cond.put("bytesPerMeasurement", BYTES_PER_MEASUREMENT);
    cond.put("transport", "loopback TCP, one connection per compression setting, an ACK per LOG frame");
    ObjectNode logsNode = out.putObject("logs");
    ObjectNode w = logsNode.putObject("workload");
    w.put("recorded", "test guest, qemuft.mode=work qemuft.work_mib=" + WORKLOAD_MIB + ", -icount " + Guest.ICOUNT + ",rr=record");
    w.put("bytes", workload.length);
    w.put("recordSeconds", BenchReport.round1(recordSeconds));
    w.put("producedMbitPerSecond", BenchReport.round1(workload.length * 8 / recordSeconds / 1e6));
    ObjectNode bn = logsNode.putObject("boot");
    bn.put("file", "native/src/test/resources/org/qemuft/replaylog/linux-boot-blkreplay.bin.gz");
    bn.put("bytes", boot.length);
    ObjectNode rawNode = out.putObject("rawMbitPerSecondMedian");
    ObjectNode wireNode = out.putObject("wireMbitPerSecondMedian");
    ObjectNode ratioNode = out.putObject("compressionRatio");
    ObjectNode all = out.putObject("rawMbitPerSecondAllRounds");
    for (var e : results.entrySet()) {
      rawNode.put(e.getKey(), BenchReport.round1(median(e.getValue(), 0)));
      wireNode.put(e.getKey(), BenchReport.round1(median(e.getValue(), 1)));
      ratioNode.put(e.getKey(), BenchReport.round1(median(e.getValue(), 2)));
      all.putPOJO(e.getKey(), e.getValue().stream().map(x -> BenchReport.round1(x[0])).toList());
    }
    ObjectNode rtt = out.putObject("ackRoundTripMicros");
    rtt.put("frames", "about 1 KiB of whole workload events, one at a time, " + RTT_SAMPLES + " each");
    for (var e : Map.of("plain", rttPlain, "zstd", rttZstd).entrySet()) {
      List<Double> sorted = new ArrayList<>(e.getValue());
      sorted.sort(null);
      ObjectNode n = rtt.putObject(e.getKey());
      n.put("median", BenchReport.round1(sorted.get(sorted.size() / 2)));
      n.put("p90", BenchReport.round1(sorted.get(sorted.size() * 9 / 10)));
      n.put("p99", BenchReport.round1(sorted.get(sorted.size() * 99 / 100)));
    }
    report.write();
  }

  /** A log (file header removed) and its cuts into whole-event frames of about each size. */
  private static Log log(String name, byte[] file, int[] sizes) throws Exception {
    byte[] events = java.util.Arrays.copyOfRange(file, ReplayLogScanner.FILE_HEADER_SIZE, file.length);
    List<Long> ends = new ArrayList<>();
    ReplayLogScanner s = ReplayLogScanner.forLogFile((k, st, e, ic) -> ends.add(e - ReplayLogScanner.FILE_HEADER_SIZE), false);
    s.feed(file, 0, file.length);
    Map<Integer, long[]> cuts = new LinkedHashMap<>();
    for (int size : sizes) {
      List<Long> b = new ArrayList<>();
      b.add(0L);
      long startAt = 0;
      for (long e : ends) {
        if (e - startAt >= size) {
          b.add(e);
          startAt = e;
        }
      }
      if (startAt != events.length) {
        b.add((long) events.length);
      }
      cuts.put(size, b.stream().mapToLong(Long::longValue).toArray());
    }
    return new Log(name, events, cuts);
  }

  private static double median(List<double[]> v, int i) {
    return BenchReport.median(v.stream().map(x -> x[i]).toList());
  }
}
