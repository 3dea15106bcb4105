package org.qemuft.it.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.it.support.Guest;
import org.qemuft.replaylog.ReplayEventListener;
import org.qemuft.replaylog.ReplayLogException;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * How fast the replay-log scanner runs over a real log: the controller scans the primary's whole
 * stream, so this must stay far above the rate QEMU produces log. Records the test guest's
 * workload once, then scans that log in memory, fed the ways the controller may feed it (64 KiB
 * and 4 KiB heap chunks, 64 KiB direct buffers as from the shared-memory ring, tiny random
 * chunks that split most events), interleaved with a plain byte-summing loop over the same bytes
 * as the memory-speed reference. Reports medians of {@value #ROUNDS} rounds.
 */
@Tag("benchmark")
class ReplayScanBenchmark {
  private static final int WORKLOAD_MIB = 128;
  private static final int WARMUP_ROUNDS = 3;
  private static final int ROUNDS = 7;
  /** Bytes scanned per measurement, so each lasts long enough to time. */
  private static final long BYTES_PER_MEASUREMENT = 400L << 20;
  private static final Duration TIMEOUT = Duration.ofMinutes(5);

  @TempDir Path tmp;

  @Test
  void scanThroughput() throws Exception {
    Path log = tmp.resolve("replay.bin");
    long recordNanos;
    long start = System.nanoTime();
    try (QemuProcess rec = QemuLaunch.of(Guest.workload(WORKLOAD_MIB), tmp.resolve("rec"), "qft-bench-scan")
        .mode(Mode.RECORD, log).start()) {
      rec.awaitSerial("QEMUFT-WORK-DONE", TIMEOUT);
      assertThat(rec.awaitExit(TIMEOUT)).contains(0);
      recordNanos = System.nanoTime() - start;
    }
    byte[] data = Files.readAllBytes(log);

    long[] sink = new long[1];
    ReplayEventListener listener = (kind, s, e, icount) -> sink[0] += kind;
    ReplayLogScanner check = ReplayLogScanner.forLogFile(listener, false);
    check.feed(data, 0, data.length);
    assertThat(check.endSeen()).isTrue();
    long events = check.events();
    long icount = check.icount();
    int passes = (int) Math.max(1, BYTES_PER_MEASUREMENT / data.length);

    Map<String, Variant> variants = new LinkedHashMap<>();
    variants.put("heap-64KiB", new Chunked(65536, false));
    variants.put("heap-4KiB", new Chunked(4096, false));
    variants.put("direct-64KiB", new Chunked(65536, true));
    variants.put("heap-random-1to64B", new RandomChunks(64));
    variants.put("baseline-byte-sum", new ByteSum());
    Map<String, List<Double>> mbps = new LinkedHashMap<>();
    variants.keySet().forEach(k -> mbps.put(k, new ArrayList<>()));

    List<String> order = new ArrayList<>(variants.keySet());
    BenchReport report = new BenchReport("replayscan");
    for (int round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
      for (int i = 0; i < order.size(); i++) {
        String name = order.get((i + round) % order.size()); // rotate so no variant is always first
        long t0 = System.nanoTime();
        long seen = 0;
        for (int p = 0; p < passes; p++) {
          seen += variants.get(name).run(data, listener);
        }
        long t1 = System.nanoTime();
        if (!name.startsWith("baseline")) {
          assertThat(seen).as(name).isEqualTo(events * passes);
        }
        if (round >= WARMUP_ROUNDS) {
          mbps.get(name).add((double) data.length * passes / ((t1 - t0) / 1e9) / 1e6);
        }
      }
    }
    ObjectNode out = report.root();
    ObjectNode cond = report.conditions();
    cond.put("warmupRounds", WARMUP_ROUNDS);
    cond.put("rounds", ROUNDS);
    cond.put("passesPerMeasurement", passes);
    ObjectNode logNode = out.putObject("log");
    logNode.put("recorded", "test guest, qemuft.mode=work qemuft.work_mib=" + WORKLOAD_MIB
        + ", -icount " + Guest.ICOUNT + ",rr=record, to a file");
    logNode.put("bytes", data.length);
    logNode.put("events", events);
    logNode.put("icount", icount);
    logNode.put("recordSeconds", recordNanos / 1e9);
    double producedMBps = data.length / (recordNanos / 1e9) / 1e6;
    logNode.put("producedMBps", producedMBps);
    ObjectNode res = out.putObject("mbPerSecondMedian");
    ObjectNode evs = out.putObject("millionEventsPerSecondMedian");
    ObjectNode ratio = out.putObject("ratioToByteSum");
    ObjectNode headroom = out.putObject("ratioToProductionRate");
    ObjectNode all = out.putObject("mbPerSecondAllRounds");
    double base = BenchReport.median(mbps.get("baseline-byte-sum"));
    for (var e : mbps.entrySet()) {
      double m = BenchReport.median(e.getValue());
      res.put(e.getKey(), BenchReport.round1(m));
      all.putPOJO(e.getKey(), e.getValue().stream().map(BenchReport::round1).toList());
      if (!e.getKey().startsWith("baseline")) {
        evs.put(e.getKey(), BenchReport.round1(m * 1e6 / data.length * events / 1e6));
        ratio.put(e.getKey(), Math.round(m / base * 1000) / 1000.0);
        headroom.put(e.getKey(), Math.round(m / producedMBps));
      }
    }
    report.write();
    assertThat(sink[0]).isNotZero();
  }

  private interface Variant {
    /** Scans the log once; returns the events found. */
    long run(byte[] data, ReplayEventListener l) throws ReplayLogException;
  }

  private static final class Chunked implements Variant {
    private final int chunk;
    private final ByteBuffer direct;

    Chunked(int chunk, boolean viaDirect) {
      this.chunk = chunk;
      this.direct = viaDirect ? ByteBuffer.allocateDirect(chunk) : null;
    }

    @Override
    public long run(byte[] data, ReplayEventListener l) throws ReplayLogException {
      ReplayLogScanner s = ReplayLogScanner.forLogFile(l, false);
      for (int p = 0; p < data.length; p += chunk) {
        int n = Math.min(chunk, data.length - p);
        if (direct == null) {
          s.feed(data, p, n);
        } else {
          // As from the ring: the bytes are in native memory (the copy in is not timed apart).
          direct.clear().put(data, p, n).flip();
          s.feed(direct);
        }
      }
      return s.events();
    }
  }

  private static final class RandomChunks implements Variant {
    private final int[] sizes;

    RandomChunks(int max) {
      SplittableRandom r = new SplittableRandom(1);
      sizes = new int[4099];
      Arrays.setAll(sizes, i -> 1 + r.nextInt(max));
    }

    @Override
    public long run(byte[] data, ReplayEventListener l) throws ReplayLogException {
      ReplayLogScanner s = ReplayLogScanner.forLogFile(l, false);
      int i = 0;
      for (int p = 0; p < data.length; ) {
        int n = Math.min(sizes[i++ % sizes.length], data.length - p);
        s.feed(data, p, n);
        p += n;
      }
      return s.events();
    }
  }

  /** Reads every byte once and does almost nothing with it: the memory-speed reference. */
  private static final class ByteSum implements Variant {
    long sum;

    @Override
    public long run(byte[] data, ReplayEventListener l) {
      long s = 0;
      for (byte b : data) {
        s += b;
      }
      sum += s;
      return s;
    }
  }
}
