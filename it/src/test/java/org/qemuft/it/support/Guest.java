package org.qemuft.it.support;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.qemuft.controller.config.FtConfig;
import org.qemuft.controller.vm.VmSpec;

/** The test guest built by scripts/build-guest, as a {@link VmSpec} the tests start from. */
public final class Guest {
  public static final String MAC = "52:54:00:12:34:56";
  /** The default icount settings of the tests: the controller's default (docs/rr-pace.md). */
  public static final String ICOUNT = FtConfig.DEFAULT_ICOUNT;

  private Guest() {}

  /** build/guest, from the qemuft.guest.dir system property the build sets. */
  public static Path dir() {
    String dir = System.getProperty("qemuft.guest.dir");
    if (dir == null) {
      throw new IllegalStateException("system property qemuft.guest.dir is not set (run the tests through Maven)");
    }
    Path p = Path.of(dir);
    for (String f : List.of("vmlinuz", "initrd.img", "disk-base.qcow2")) {
      if (!Files.isRegularFile(p.resolve(f))) {
        throw new IllegalStateException(p.resolve(f) + " is missing: run scripts/setup (it runs scripts/build-guest)");
      }
    }
    return p;
  }

  /** The guest with these kernel arguments (see scripts/guest/init), 256 MiB, no disks. */
  public static VmSpec spec(String kernelArgs) {
    Path d = dir();
    return new VmSpec(d.resolve("vmlinuz"), d.resolve("initrd.img"), kernelArgs, 256, MAC, ICOUNT, List.of());
  }

  /** The CPU-bound workload of {@code mib} MiB; the guest powers off when it is done. */
  public static VmSpec workload(int mib) {
    return spec("qemuft.mode=work qemuft.work_mib=" + mib);
  }

  /**
   * The workload, sleeping {@code idleMs} after each progress line (every 32 MiB): the guest idles
   * mid-run, and QEMU opens and closes idle warps there (docs/go-live.md).
   */
  public static VmSpec workload(int mib, int idleMs) {
    return spec("qemuft.mode=work qemuft.work_mib=" + mib + " qemuft.work_idle_ms=" + idleMs);
  }

  /** The test service on {@code ip} (e.g. 10.0.0.2/24) port 7000. */
  public static VmSpec service(String ip) {
    return spec("qemuft.ip=" + ip);
  }
}
