package org.qemuft.it.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.RingCopier;
import org.qemuft.it.support.ShmRings;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * What libftshim costs QEMU: the test guest's CPU-bound workload recorded into a plain file
 * (/dev/shm) and into a ring that a Java thread drains as the controller would (batches of 64 KiB
 * or 2 ms), and one recording of it replayed from that file and from a ring a Java thread feeds
 * through ReplayFeed while QEMU reads. Same guest, same icount settings; the four variants run
 * interleaved, rotating their order each round. Reports the median wall time of whole QEMU runs
 * (start to exit at the guest's power-off) and the ratios ring/file.
 */
@Tag("benchmark")
class ShimBenchmark {
  /** QEMUFT_BENCH_WORK_MIB: long enough that the runs are more than boot (1 GiB: about 2 s of work). */
  private static final int WORKLOAD_MIB = BenchReport.env("QEMUFT_BENCH_WORK_MIB", 1024);
  private static final int WARMUP_ROUNDS = 1;
  private static final int ROUNDS = 5;
  private static final long RING = 1 << 20;
  private static final Duration TIMEOUT = Duration.ofMinutes(5);

  @TempDir Path tmp;

  @Test
  void recordAndReplayThroughTheShimAgainstPlainFiles() throws Exception {
    VmSpec spec = Guest.workload(WORKLOAD_MIB);
    Path lib = ShmRings.shimLibrary();
    try (ShmRings rings = new ShmRings()) {
      // The recording both replays read.
      Path log = rings.path("qemuft-bench-replay.bin");
      run(QemuLaunch.of(spec, tmp.resolve("src"), "qft-bench-src").mode(Mode.RECORD, log));
      byte[] file = Files.readAllBytes(log);
      byte[] stream = Arrays.copyOfRange(file, ReplayLogScanner.FILE_HEADER_SIZE, file.length);

      Map<String, List<Double>> seconds = new LinkedHashMap<>();
      Map<String, List<Long>> logBytes = new LinkedHashMap<>();
      for (String v : List.of("record-file", "record-ring", "replay-file", "replay-ring")) {
        seconds.put(v, new ArrayList<>());
        logBytes.put(v, new ArrayList<>());
      }
      List<String> order = new ArrayList<>(seconds.keySet());
      BenchReport report = new BenchReport("shim");
      for (int round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
        for (int i = 0; i < order.size(); i++) {
          String v = order.get((i + round) % order.size());
          Path dir = tmp.resolve(v + "-" + round);
          long t0 = System.nanoTime();
          long bytes;
          switch (v) {
            case "record-file" -> {
              Path out = rings.path("qemuft-bench-rec-" + round + ".bin");
              run(QemuLaunch.of(spec, dir, "qft-bench-rf").mode(Mode.RECORD, out));
              bytes = Files.size(out) - ReplayLogScanner.FILE_HEADER_SIZE;
              Files.delete(out);
            }
            case "record-ring" -> {
              try (LogRing ring = rings.create("qemuft-bench-rr-" + round, RING);
                  RingCopier drain = new RingCopier(ring, null, false, false)) {
                run(QemuLaunch.of(spec, dir, "qft-bench-rr").mode(Mode.RECORD, dir.resolve("replay.bin"))
                    .shim(lib, ring.path()));
                drain.awaitEnd(TIMEOUT);
                bytes = ring.writePosition();
              }
              Files.delete(rings.path("qemuft-bench-rr-" + round));
            }
            case "replay-file" -> {
              run(QemuLaunch.of(spec, dir, "qft-bench-pf").mode(Mode.REPLAY, log));
              bytes = stream.length;
            }
            case "replay-ring" -> {
              try (LogRing ring = rings.create("qemuft-bench-pr-" + round, RING)) {
                Thread feeder = Thread.ofPlatform().name("qft-bench-feeder").start(() -> {
                  ReplayFeed feed = new ReplayFeed(ring);
                  try {
                    for (int p = 0; p < stream.length; p += 65536) {
                      int n = Math.min(65536, stream.length - p);
                      if (!feed.feed(stream, p, n, TIMEOUT)) {
                        throw new IllegalStateException("the replaying QEMU stopped reading");
                      }
                    }
                  } catch (Exception e) {
                    throw new IllegalStateException(e);
                  }
                });
                run(QemuLaunch.of(spec, dir, "qft-bench-pr").mode(Mode.REPLAY, dir.resolve("replay.bin"))
                    .shim(lib, ring.path()));
                feeder.join(TIMEOUT.toMillis());
                bytes = ring.readPosition();
              }
              Files.delete(rings.path("qemuft-bench-pr-" + round));
            }
            default -> throw new IllegalStateException(v);
          }
          double s = (System.nanoTime() - t0) / 1e9;
          if (round >= WARMUP_ROUNDS) {
            seconds.get(v).add(Math.round(s * 1000) / 1000.0);
            logBytes.get(v).add(bytes);
          }
        }
      }
      ObjectNode out = report.root();
      ObjectNode cond = report.conditions();
      cond.put("workload", "test guest, qemuft.mode=work qemuft.work_mib=" + WORKLOAD_MIB);
      cond.put("icount", Guest.ICOUNT);
      cond.put("ringBytes", RING);
      cond.put("files", "in /dev/shm (memory), like the rings");
      cond.put("warmupRounds", WARMUP_ROUNDS);
      cond.put("rounds", ROUNDS);
      ObjectNode med = out.putObject("secondsMedian");
      ObjectNode all = out.putObject("secondsAllRounds");
      ObjectNode bytes = out.putObject("logBytesAllRounds");
      for (String v : seconds.keySet()) {
        med.put(v, BenchReport.median(seconds.get(v)));
        all.putPOJO(v, seconds.get(v));
        bytes.putPOJO(v, logBytes.get(v));
      }
      ObjectNode ratio = out.putObject("ratioRingToFile");
      ratio.put("record", Math.round(BenchReport.median(seconds.get("record-ring")) / BenchReport.median(seconds.get("record-file")) * 1000) / 1000.0);
      ratio.put("replay", Math.round(BenchReport.median(seconds.get("replay-ring")) / BenchReport.median(seconds.get("replay-file")) * 1000) / 1000.0);
      report.write();
      assertThat(seconds.get("replay-ring")).hasSize(ROUNDS);
    }
  }

  /** Runs QEMU to the guest's power-off; it must exit 0 having printed the workload's result. */
  private static void run(QemuLaunch launch) throws Exception {
    try (QemuProcess q = launch.start()) {
      q.awaitSerial("QEMUFT-WORK-DONE", TIMEOUT);
      assertThat(q.awaitExit(TIMEOUT)).as(q.qemuLogText()).contains(0);
    }
  }
}
