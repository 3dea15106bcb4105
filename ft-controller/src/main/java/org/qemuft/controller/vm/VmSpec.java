package org.qemuft.controller.vm;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A virtual machine as qemu-ft runs it, described once: primary and backup build their QEMU
 * command lines from the same {@code VmSpec}, so the two machines are identical by construction
 * (TCG, one vCPU, the same memory, devices, kernel command line and icount settings).
 *
 * @param kernel the guest kernel ({@code -kernel})
 * @param initrd the guest initramfs ({@code -initrd})
 * @param kernelArgs extra kernel command line, appended after qemu-ft's console settings
 * @param memoryMiB guest RAM in MiB
 * @param mac the guest NIC's MAC address (also the one announced on going live)
 * @param icount the {@code -icount} settings without the rr parts, e.g. {@code shift=0}
 * @param disks the guest's disks in order ({@code /dev/vda}, {@code /dev/vdb}, ...)
 * @param inputWakeUs how often, in microseconds of guest time, a host-side timer wakes QEMU's vCPU
 *     thread to take queued input (frames, disk completions) to an idle guest; 0 (the default):
 *     only when the guest's own timers wake it. A recording QEMU hands input to a halted vCPU only
 *     at its next wake, so this bounds the latency recording adds to every request
 *     (docs/rr-pace.md, "Input latency of a recording primary")
 */
public record VmSpec(
    Path kernel,
    Path initrd,
    String kernelArgs,
    int memoryMiB,
    String mac,
    String icount,
    List<Disk> disks,
    int inputWakeUs) {

  /**
   * The default {@link #inputWakeUs}: none. The host-side wake-up costs a CPU-bound recording
   * about 16% of its speed at 500 µs (each firing while the guest computes is a pass of the vCPU
   * loop and a hand-off to QEMU's main loop); a guest that runs an idle waker itself (qemu-ft's test
   * guest does: {@code qemuft.wake_us}) gets a similar bound for about 3% (docs/rr-pace.md, "Input
   * latency of a recording primary").
   */
  public static final int DEFAULT_INPUT_WAKE_US = 0;
  /** A floor against typos: at 50 µs the timer already fires 20,000 times per second of guest time. */
  public static final int MIN_INPUT_WAKE_US = 50;

  private static final Pattern MAC = Pattern.compile("(?i)[0-9a-f]{2}(:[0-9a-f]{2}){5}");
  private static final Pattern ICOUNT_RR = Pattern.compile("(^|,)\\s*rr(file|snapshot)?\\s*=");

  /**
   * A guest disk: an image QEMU opens by location (a local path, an {@code nfs://} URL, or an
   * {@code nbd:unix:SOCKET} export) in the given format ({@code qcow2} or {@code raw}).
   *
   * <p>Under record/replay, QEMU 7.2 cannot replay a disk opened through its own {@code nfs://}
   * driver (see docs/shared-storage.md): serve such images through qemu-nbd instead
   * ({@code org.qemuft.storage.NbdExport}), which is a raw disk at an {@code nbd:} location.
   */
  public record Disk(String location, String format) {
    public Disk {
      Objects.requireNonNull(location, "disk location");
      Objects.requireNonNull(format, "disk format");
      if (location.isBlank()) {
        throw new IllegalArgumentException("disk location is empty");
      }
      if (!format.equals("qcow2") && !format.equals("raw")) {
        throw new IllegalArgumentException("disk format '" + format + "' must be qcow2 or raw");
      }
    }

    /** A qcow2 image. */
    public Disk(String location) {
      this(location, "qcow2");
    }
  }

  public VmSpec {
    Objects.requireNonNull(kernel, "kernel");
    Objects.requireNonNull(initrd, "initrd");
    kernelArgs = kernelArgs == null ? "" : kernelArgs.strip();
    if (memoryMiB < 64 || memoryMiB > 1 << 20) {
      throw new IllegalArgumentException("memory " + memoryMiB + " MiB is outside 64..1048576");
    }
    if (mac == null || !MAC.matcher(mac).matches()) {
      throw new IllegalArgumentException("mac '" + mac + "' is not of the form 52:54:00:12:34:56");
    }
    if (icount == null || icount.isBlank()) {
      throw new IllegalArgumentException("icount settings are empty (record/replay needs icount, e.g. shift=0)");
    }
    if (ICOUNT_RR.matcher(icount).find()) {
      throw new IllegalArgumentException(
          "icount '" + icount + "' must not contain rr/rrfile/rrsnapshot: qemu-ft sets them per role");
    }
    disks = List.copyOf(disks == null ? List.of() : disks);
    if (inputWakeUs != 0 && (inputWakeUs < MIN_INPUT_WAKE_US || inputWakeUs > 1_000_000)) {
      throw new IllegalArgumentException("inputWakeUs " + inputWakeUs + " is outside " + MIN_INPUT_WAKE_US
          + "..1000000 (0 turns the wake-ups off)");
    }
  }

  /** A machine with the {@link #DEFAULT_INPUT_WAKE_US default} input wake-up interval. */
  public VmSpec(Path kernel, Path initrd, String kernelArgs, int memoryMiB, String mac, String icount,
      List<Disk> disks) {
    this(kernel, initrd, kernelArgs, memoryMiB, mac, icount, disks, DEFAULT_INPUT_WAKE_US);
  }

  /** The same machine with other kernel arguments (tests and benchmarks vary the workload). */
  public VmSpec withKernelArgs(String args) {
    return new VmSpec(kernel, initrd, args, memoryMiB, mac, icount, disks, inputWakeUs);
  }

  /** The same machine with other icount settings. */
  public VmSpec withIcount(String settings) {
    return new VmSpec(kernel, initrd, kernelArgs, memoryMiB, mac, settings, disks, inputWakeUs);
  }

  /** The same machine with these disks. */
  public VmSpec withDisks(List<Disk> newDisks) {
    return new VmSpec(kernel, initrd, kernelArgs, memoryMiB, mac, icount, newDisks, inputWakeUs);
  }

  /** The same machine with another input wake-up interval (0: none). */
  public VmSpec withInputWakeUs(int micros) {
    return new VmSpec(kernel, initrd, kernelArgs, memoryMiB, mac, icount, disks, micros);
  }
}
