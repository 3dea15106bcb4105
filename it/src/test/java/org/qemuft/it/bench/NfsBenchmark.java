package org.qemuft.it.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.controller.vm.VmSpec;
import org.qemuft.it.support.Guest;
import org.qemuft.it.support.NfsServer;
import org.qemuft.storage.Claimant;
import org.qemuft.storage.GoLiveLock;
import org.qemuft.storage.Images;
import org.qemuft.storage.NbdExport;
import org.qemuft.storage.SharedStorage;
import org.qemuft.storage.StorageOptions;

/**
 * Shared storage figures, side by side in one run against a local nfs-ganesha on loopback:
 * go-live lock acquire latency (won on a fresh epoch, and lost to an existing winner) on the
 * libnfs backend and on a local directory (the mounted-directory backend without NFS under it),
 * and the guest's disk write throughput (qemuft.mode=diskwrite, plain TCG so the guest's clock is
 * the host's) on a local qcow2 file, on nfs:// through QEMU's own driver, and through qemu-nbd.
 */
@Tag("benchmark")
class NfsBenchmark {
  @RegisterExtension static final NfsServer NFS = new NfsServer();

  private static final int LOCK_WARMUP = 50;
  private static final int LOCK_SAMPLES = 400;
  private static final int DISK_MIB = 32;
  private static final int DISK_ROUNDS = 3;
  private static final Duration BOOT = Duration.ofMinutes(5);

  @TempDir Path tmp;

  @Test
  void lockLatencyAndDiskThroughput() throws Exception {
    BenchReport report = new BenchReport("nfs");
    Path dirRoot = Files.createDirectory(tmp.resolve("dir-storage"));
    Map<String, String> locations = new LinkedHashMap<>();
    locations.put("libnfs", NFS.url());
    locations.put("directory", dirRoot.toString());
    Map<String, List<Double>> won = new LinkedHashMap<>();
    Map<String, List<Double>> lost = new LinkedHashMap<>();
    StorageOptions opts = StorageOptions.DEFAULT;
    Map<String, SharedStorage> stores = new LinkedHashMap<>();
    try {
      for (var e : locations.entrySet()) {
        stores.put(e.getKey(), SharedStorage.open(e.getValue(), opts));
        won.put(e.getKey(), new ArrayList<>());
        lost.put(e.getKey(), new ArrayList<>());
      }
      Claimant a = new Claimant("bench-a", 1, "backup");
      Claimant b = new Claimant("bench-b", 2, "primary");
      // Batches of 50 alternate between the backends so load changes hit both alike.
      for (int batch = 0; batch < (LOCK_WARMUP + LOCK_SAMPLES) / 50; batch++) {
        for (var e : stores.entrySet()) {
          GoLiveLock la = new GoLiveLock(e.getValue());
          GoLiveLock lb = new GoLiveLock(e.getValue());
          for (int i = 0; i < 50; i++) {
            long epoch = batch * 50L + i;
            long t0 = System.nanoTime();
            boolean w = la.tryAcquire("bench", epoch, a).won();
            long t1 = System.nanoTime();
            boolean l = lb.tryAcquire("bench", epoch, b).won();
            long t2 = System.nanoTime();
            assertThat(w).isTrue();
            assertThat(l).isFalse();
            if (epoch >= LOCK_WARMUP) {
              won.get(e.getKey()).add((t1 - t0) / 1e6);
              lost.get(e.getKey()).add((t2 - t1) / 1e6);
            }
          }
        }
      }
    } finally {
      stores.values().forEach(SharedStorage::close);
    }

    // Guest disk writes.
    Map<String, List<Double>> guestMiBps = new LinkedHashMap<>();
    Map<String, List<Double>> hostSeconds = new LinkedHashMap<>();
    try (SharedStorage storage = SharedStorage.open(NFS.url(), opts)) {
      Images images = new Images(storage);
      String base = images.importBase(Guest.dir().resolve("disk-base.qcow2"), "disk-base");
      List<String> variants = List.of("local-file", "nfs-qemu-driver", "nfs-via-qemu-nbd");
      variants.forEach(v -> {
        guestMiBps.put(v, new ArrayList<>());
        hostSeconds.put(v, new ArrayList<>());
      });
      for (int round = 0; round < DISK_ROUNDS; round++) {
        for (int k = 0; k < variants.size(); k++) {
          String v = variants.get((k + round) % variants.size());
          String name = "r" + round + "-" + v;
          Path run = tmp.resolve(name);
          NbdExport nbd = null;
          VmSpec.Disk disk;
          switch (v) {
            case "local-file" -> {
              Path img = tmp.resolve(name + ".qcow2");
              new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", "-b",
                  Guest.dir().resolve("disk-base.qcow2").toString(), "-F", "qcow2", img.toString())
                  .inheritIO().start().waitFor();
              disk = new VmSpec.Disk(img.toString());
            }
            case "nfs-qemu-driver" -> disk = new VmSpec.Disk(images.createImage("bench/" + name + ".qcow2", base));
            default -> {
              images.createImage("bench/" + name + ".qcow2", base);
              nbd = NbdExport.serve(storage, "bench/" + name + ".qcow2", tmp.resolve(name + ".sock"));
              disk = new VmSpec.Disk(nbd.location(), "raw");
            }
          }
          // no_timer_check: plain TCG on a loaded host can fail the kernel's IO-APIC timer check
          // and panic ("IO-APIC + timer doesn't work!"); icount would make the guest's clock
          // useless for timing I/O.
          VmSpec spec = Guest.spec("no_timer_check qemuft.mode=diskwrite qemuft.data=/dev/vda qemuft.disk_mib=" + DISK_MIB)
              .withDisks(List.of(disk));
          try (NbdExport closeMe = nbd;
              QemuProcess q = QemuLaunch.of(spec, run, "qft-bench-" + round + k).mode(Mode.PLAIN, null).start()) {
            q.awaitSerial("QEMUFT-DISKWRITE-RUN", BOOT);
            long t0 = System.nanoTime();
            Matcher m = q.awaitSerial("QEMUFT-DISKWRITE-DONE run=1 mib=" + DISK_MIB
                + " checksum=[0-9a-f]{16} write_ms=([0-9.]+)", BOOT);
            long t1 = System.nanoTime();
            assertThat(q.awaitExit(BOOT)).contains(0);
            guestMiBps.get(v).add(DISK_MIB / (Double.parseDouble(m.group(1)) / 1000));
            hostSeconds.get(v).add((t1 - t0) / 1e9);
          }
        }
      }
    }
    ObjectNode out = report.root();
    ObjectNode cond = report.conditions();
    cond.put("server", "nfs-ganesha 4.3 (FSAL VFS) on 127.0.0.1, NFSv3/TCP; export on the local disk");
    cond.put("lockSamples", LOCK_SAMPLES);
    cond.put("diskMiB", DISK_MIB);
    cond.put("diskRounds", DISK_ROUNDS);
    ObjectNode lock = out.putObject("lockAcquireMs");
    for (String k : won.keySet()) {
      ObjectNode n = lock.putObject(k);
      n.put("wonP50", pct(won.get(k), 50));
      n.put("wonP99", pct(won.get(k), 99));
      n.put("lostP50", pct(lost.get(k), 50));
      n.put("lostP99", pct(lost.get(k), 99));
    }
    lock.put("wonP50RatioLibnfsToDirectory", Math.round(pct(won.get("libnfs"), 50) / pct(won.get("directory"), 50) * 10) / 10.0);
    ObjectNode disk = out.putObject("guestDiskWrite");
    for (String k : guestMiBps.keySet()) {
      ObjectNode n = disk.putObject(k);
      n.put("guestMiBpsMedian", BenchReport.round1(pct(guestMiBps.get(k), 50)));
      n.putPOJO("guestMiBpsAll", guestMiBps.get(k).stream().map(BenchReport::round1).toList());
      n.put("hostSecondsWriteAndReadBackMedian", BenchReport.round1(pct(hostSeconds.get(k), 50)));
      n.put("ratioToLocalFile", Math.round(pct(guestMiBps.get(k), 50) / pct(guestMiBps.get("local-file"), 50) * 100) / 100.0);
    }
    report.write();
  }

  private static double pct(List<Double> xs, int p) {
    List<Double> s = new ArrayList<>(xs);
    s.sort(null);
    int i = (int) Math.ceil(p / 100.0 * s.size()) - 1;
    return Math.round(s.get(Math.max(0, Math.min(s.size() - 1, i))) * 1000) / 1000.0;
  }
}
