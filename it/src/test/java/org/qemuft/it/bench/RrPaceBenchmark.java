package org.qemuft.it.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuLaunch.Timers;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.replaylog.ReplayEventKind;
import org.qemuft.replaylog.ReplayLogScanner;

/**
 * Replay pace against record pace (docs/rr-pace.md): a backup must keep up with its primary, so
 * the time QEMU takes to replay a log, relative to the time it took to record it, is qemu-ft's
 * fault-tolerance overhead. For the CPU-bound test workload ({@link Guest#workload}), side by side
 * in interleaved rounds: plain TCG, icount without record/replay, record to a file, and replay of
 * that file; under the chosen settings ({@link Guest#ICOUNT} with {@link Timers#REPLAY_FRIENDLY})
 * and under the old ones ({@code shift=auto}, {@link Timers#QEMU_DEFAULTS}) for comparison; and the
 * chosen settings with the host-side input wake-up every 500 µs ({@code VmSpec.inputWakeUs}), its
 * cost. The guest runs its own idle waker in all of them (the test guest's default).
 *
 * <p>Times are whole-process wall times, and the work phase alone (from the guest's QEMUFT-READY
 * line to QEMU's exit). On a busy machine wall times mostly measure the wait for a CPU, so each
 * run also reports the vCPU thread's time on the CPU and its time waiting in the run queue (from
 * {@code /proc/PID/task/TID/schedstat}); {@code wallMinusRunqueueSeconds} estimates the quiet
 * machine's wall time. Ratios are medians of per-round ratios (record and replay run back to back
 * in each round).
 */
@Tag("benchmark")
class RrPaceBenchmark {
  private static final int WORKLOAD_MIB = 1024;
  private static final int ROUNDS = 5;
  private static final Duration TIMEOUT = Duration.ofMinutes(10);
  private static final String DONE = "QEMUFT-WORK-DONE mib=\\d+ checksum=([0-9a-f]{16}) elapsed_ms=([0-9.]+)";
  private static final List<Mode> MODES = List.of(Mode.PLAIN, Mode.ICOUNT, Mode.RECORD, Mode.REPLAY);

  /** {@code inputWakeUs}: the input wake-up timer's interval, 0 without (VmSpec.inputWakeUs). */
  private record Setting(String name, String icount, Timers timers, int inputWakeUs) {}

  private record Run(double wall, double work, double boot, double cpu, double vcpuCpu,
      double vcpuRunqueue, String checksum, double guestMs) {
    double adjusted() {
      return wall - vcpuRunqueue;
    }
  }

  @TempDir Path tmp;

  @Test
  void replayPaceAgainstRecordPace() throws Exception {
    List<Setting> settings = List.of(
        new Setting("chosen", Guest.ICOUNT, Timers.REPLAY_FRIENDLY, VmSpec.DEFAULT_INPUT_WAKE_US),
        new Setting("chosen-with-host-wake-up", Guest.ICOUNT, Timers.REPLAY_FRIENDLY, 500),
        new Setting("old-shift-auto", "shift=auto", Timers.QEMU_DEFAULTS, 0));
    Map<String, Map<Mode, List<Run>>> runs = new LinkedHashMap<>();
    Map<String, ObjectNode> logs = new LinkedHashMap<>();
    BenchReport report = new BenchReport("rrpace");
    for (int round = 0; round < ROUNDS; round++) {
      for (int s = 0; s < settings.size(); s++) {
        Setting setting = settings.get((s + round) % settings.size()); // alternate which goes first
        Path log = tmp.resolve(setting.name() + ".rr");
        Map<Mode, Run> thisRound = new LinkedHashMap<>();
        for (Mode mode : MODES) {
          Run r = run(setting, mode, log, round);
          thisRound.put(mode, r);
          runs.computeIfAbsent(setting.name(), k -> new LinkedHashMap<>())
              .computeIfAbsent(mode, k -> new ArrayList<>()).add(r);
          if (mode == Mode.RECORD && !logs.containsKey(setting.name())) {
            logs.put(setting.name(), describeLog(log));
          }
        }
        // The same work everywhere, and a replay that followed its recording exactly.
        String checksum = thisRound.get(Mode.PLAIN).checksum();
        thisRound.forEach((mode, r) -> assertThat(r.checksum()).as(setting + " " + mode).isEqualTo(checksum));
        assertThat(thisRound.get(Mode.REPLAY).guestMs()).as(setting + ": the guest's clock in replay")
            .isEqualTo(thisRound.get(Mode.RECORD).guestMs());
      }
    }

    ObjectNode out = report.root();
    ObjectNode cond = report.conditions();
    cond.put("qemu", QemuLaunch.qemuBinary());
    cond.put("workload", "qemuft.mode=work qemuft.work_mib=" + WORKLOAD_MIB + " (boot, then the work, then power-off)");
    cond.put("rounds", ROUNDS);
    for (Setting setting : settings) {
      Map<Mode, List<Run>> byMode = runs.get(setting.name());
      ObjectNode sn = out.putObject(setting.name());
      sn.put("icount", setting.icount());
      sn.put("timers", setting.timers().name());
      sn.put("inputWakeUs", setting.inputWakeUs());
      sn.set("log", logs.get(setting.name()));
      ObjectNode medians = sn.putObject("medianSeconds");
      for (Mode mode : MODES) {
        List<Run> rs = byMode.get(mode);
        ObjectNode m = medians.putObject(mode.name().toLowerCase());
        m.put("wall", BenchReport.round3(BenchReport.median(rs.stream().map(Run::wall).toList())));
        m.put("work", BenchReport.round3(BenchReport.median(rs.stream().map(Run::work).toList())));
        m.put("boot", BenchReport.round3(BenchReport.median(rs.stream().map(Run::boot).toList())));
        m.put("cpu", BenchReport.round3(BenchReport.median(rs.stream().map(Run::cpu).toList())));
        m.put("vcpuRunqueueWait", BenchReport.round3(BenchReport.median(rs.stream().map(Run::vcpuRunqueue).toList())));
        m.put("wallMinusRunqueue", BenchReport.round3(BenchReport.median(rs.stream().map(Run::adjusted).toList())));
        m.put("guestMs", BenchReport.round3(BenchReport.median(rs.stream().map(Run::guestMs).toList())));
      }
      ObjectNode ratios = sn.putObject("medianRatios");
      ratios.put("replayToRecordWall", ratio(byMode, Mode.REPLAY, Mode.RECORD, Run::wall));
      ratios.put("replayToRecordWork", ratio(byMode, Mode.REPLAY, Mode.RECORD, Run::work));
      ratios.put("replayToRecordWallMinusRunqueue", ratio(byMode, Mode.REPLAY, Mode.RECORD, Run::adjusted));
      ratios.put("replayToRecordCpu", ratio(byMode, Mode.REPLAY, Mode.RECORD, Run::cpu));
      ratios.put("recordToIcountWall", ratio(byMode, Mode.RECORD, Mode.ICOUNT, Run::wall));
      ratios.put("recordToPlainWall", ratio(byMode, Mode.RECORD, Mode.PLAIN, Run::wall));
      ratios.put("icountToPlainWork", ratio(byMode, Mode.ICOUNT, Mode.PLAIN, Run::work));
      ObjectNode all = sn.putObject("allRoundsWallSeconds");
      for (Mode mode : MODES) {
        all.putPOJO(mode.name().toLowerCase(), byMode.get(mode).stream().map(r -> BenchReport.round3(r.wall())).toList());
      }
    }
    ObjectNode cmp = out.putObject("chosenAgainstOld");
    cmp.put("recordWall", BenchReport.round3(BenchReport.median(runs.get("chosen").get(Mode.RECORD).stream().map(Run::wall).toList())
        / BenchReport.median(runs.get("old-shift-auto").get(Mode.RECORD).stream().map(Run::wall).toList())));
    cmp.put("replayWall", BenchReport.round3(BenchReport.median(runs.get("chosen").get(Mode.REPLAY).stream().map(Run::wall).toList())
        / BenchReport.median(runs.get("old-shift-auto").get(Mode.REPLAY).stream().map(Run::wall).toList())));
    report.write();
  }

  /** One QEMU run of the workload; checks that it computed the right thing and replayed in step. */
  private Run run(Setting setting, Mode mode, Path log, int round) throws Exception {
    String name = "qft-rrpace-" + setting.name() + "-" + mode.name().toLowerCase();
    QemuLaunch launch = QemuLaunch.of(
        Guest.workload(WORKLOAD_MIB).withIcount(setting.icount()).withInputWakeUs(setting.inputWakeUs()),
        tmp.resolve(name + "-" + round), name).timers(setting.timers()).mode(mode, log);
    long t0 = System.nanoTime();
    try (QemuProcess qemu = launch.start()) {
      SchedSampler sched = new SchedSampler(qemu.pid());
      Thread sampler = Thread.ofPlatform().daemon().name("qft-rrpace-sched").start(sched);
      try {
        qemu.awaitSerial("QEMUFT-READY", TIMEOUT);
        long tReady = System.nanoTime();
        Matcher done = qemu.awaitSerial(DONE, TIMEOUT);
        assertThat(qemu.awaitExit(TIMEOUT)).as(name + " exit status").contains(0);
        long t1 = System.nanoTime();
        sched.stop();
        sampler.join();
        return new Run((t1 - t0) / 1e9, (t1 - tReady) / 1e9, (tReady - t0) / 1e9, sched.cpuSeconds(),
            sched.vcpuCpuSeconds(), sched.vcpuRunqueueSeconds(), done.group(1),
            Double.parseDouble(done.group(2)));
      } finally {
        sched.stop();
      }
    }
  }

  private static ObjectNode describeLog(Path log) throws IOException {
    long[] counts = new long[ReplayEventKind.CODE_COUNT];
    ReplayLogScanner scanner = ReplayLogScanner.forLogFile((kind, s, e, icount) -> counts[kind]++, false);
    byte[] data = Files.readAllBytes(log);
    scanner.feed(data, 0, data.length);
    assertThat(scanner.endSeen()).as("the recording " + log + " ends with END").isTrue();
    ObjectNode n = com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
    n.put("bytes", data.length);
    n.put("events", scanner.events());
    n.put("icount", scanner.icount());
    ObjectNode byKind = n.putObject("byKind");
    for (int k = 0; k < counts.length; k++) {
      if (counts[k] > 0) {
        byKind.put(ReplayEventKind.of(k).name(), counts[k]);
      }
    }
    return n;
  }

  private static double ratio(Map<Mode, List<Run>> byMode, Mode a, Mode b,
      java.util.function.ToDoubleFunction<Run> f) {
    List<Run> as = byMode.get(a);
    List<Run> bs = byMode.get(b);
    List<Double> r = new ArrayList<>();
    for (int i = 0; i < Math.min(as.size(), bs.size()); i++) {
      r.add(f.applyAsDouble(as.get(i)) / f.applyAsDouble(bs.get(i)));
    }
    return BenchReport.round3(BenchReport.median(r));
  }

  /**
   * Samples /proc/PID/task/TID/schedstat (time on a CPU, time runnable but waiting for one) every
   * 20 ms until stopped, keeping each thread's last values; the vCPU thread is the one with the
   * most CPU time.
   */
  private static final class SchedSampler implements Runnable {
    private final long pid;
    private final Map<String, long[]> last = new ConcurrentHashMap<>();
    private volatile boolean stopped;

    SchedSampler(long pid) {
      this.pid = pid;
    }

    void stop() {
      stopped = true;
    }

    @Override
    public void run() {
      Path tasks = Path.of("/proc", Long.toString(pid), "task");
      while (!stopped) {
        try (Stream<Path> ts = Files.list(tasks)) {
          for (Path t : ts.toList()) {
            try {
              String[] f = Files.readString(t.resolve("schedstat")).trim().split("\\s+");
              last.put(t.getFileName().toString(), new long[] {Long.parseLong(f[0]), Long.parseLong(f[1])});
            } catch (IOException | RuntimeException e) {
              // the thread ended between listing and reading: its last sample stays
            }
          }
        } catch (IOException e) {
          return; // the process is gone
        }
        try {
          Thread.sleep(20);
        } catch (InterruptedException e) {
          return;
        }
      }
    }

    double cpuSeconds() {
      return last.values().stream().mapToLong(v -> v[0]).sum() / 1e9;
    }

    private long[] vcpu() {
      return last.values().stream().max((x, y) -> Long.compare(x[0], y[0])).orElse(new long[2]);
    }

    double vcpuCpuSeconds() {
      return vcpu()[0] / 1e9;
    }

    double vcpuRunqueueSeconds() {
      return vcpu()[1] / 1e9;
    }
  }
}
