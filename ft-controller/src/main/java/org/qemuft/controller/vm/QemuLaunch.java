package org.qemuft.controller.vm;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The command line and environment of one QEMU process running a {@link VmSpec}, and its start.
 *
 * <p>Every QEMU qemu-ft starts gets: TCG, one vCPU, no default devices, no display, no reboot
 * (a guest reboot or panic ends the process), the serial console in {@code serial.log} and QMP on
 * {@code qmp.sock} (mode 0600) inside the run directory, which this class creates with mode 0700.
 * The board, its timer devices and the guest kernel's timer options are {@link Timers#REPLAY_FRIENDLY}
 * unless a benchmark asks for QEMU's defaults: they decide how fast a backup can replay (see
 * docs/rr-pace.md).
 * A mode adds icount and record/replay; the guest NIC, if any, is a virtio-net device on a UDP
 * socket connected to an end the caller owns ({@link #guestNic}), with {@code filter-replay} on it
 * under record/replay. Under record/replay every disk goes through QEMU's {@code blkreplay}
 * driver.
 *
 * <p>Not thread-safe; build, then {@link #start()}.
 */
public final class QemuLaunch {

  /** How QEMU runs the guest. */
  public enum Mode {
    /** Plain TCG without icount (only for comparisons in benchmarks). */
    PLAIN,
    /** TCG with icount, no record/replay. */
    ICOUNT,
    /** icount with {@code rr=record}. */
    RECORD,
    /** icount with {@code rr=replay}. */
    REPLAY
  }

  /**
   * The emulated board's timer devices and the guest kernel's timer options. Under record/replay
   * every pass of QEMU's vCPU loop becomes log events, and each event costs the replaying backup a
   * hand-off between its threads, so devices that make the guest busy-wait or QEMU read the host
   * clock slow the backup down (docs/rr-pace.md has the measurements). Primary and backup must use
   * the same value: it is part of the machine.
   */
  public enum Timers {
    /**
     * The default. {@code -machine q35} without HPET, PS/2 controller, SATA and SMBus (with q35's
     * ACPI tables the guest then skips probing the absent PS/2 controller, which it does with
     * busy-wait delays on {@code pc}); the RTC on the VM clock ({@code -rtc clock=vm}: no host-clock
     * timers, so no host-clock checkpoints in the log); and guest kernel options that skip the
     * boot-time checks and calibrations that busy-wait with PAUSE, each iteration of which ends a
     * pass of the vCPU loop and logs two events ({@code no_timer_check pmtmr=0 noapictimer}: the
     * guest ticks on the PIT and keeps time with the TSC, which under icount is the instruction
     * count). And {@code nohz=off}: the guest keeps ticking while idle, because a recording QEMU
     * hands a frame to an idle guest only when something wakes its vCPU, and the output gate
     * releases a frame only after the next event (docs/pair.md, "Latency"): with a tickless
     * guest's own timers both waited up to seconds, with the tick at most one tick (4 ms at
     * 250 Hz). Shorter bounds need an idle waker in the guest, or the host-side
     * {@link VmSpec#inputWakeUs} ({@link #INPUT_WAKE_NETDEV}).
     */
    REPLAY_FRIENDLY,
    /**
     * QEMU's defaults: {@code -machine pc}, RTC on the host clock, no timer options. What qemu-ft
     * used before; only for comparisons in benchmarks.
     */
    QEMU_DEFAULTS
  }

  /** {@code -machine} for {@link Timers#REPLAY_FRIENDLY}. */
  public static final String REPLAY_FRIENDLY_MACHINE = "q35,hpet=off,i8042=off,sata=off,smbus=off";
  /** Guest kernel options for {@link Timers#REPLAY_FRIENDLY}. */
  public static final String REPLAY_FRIENDLY_KERNEL_ARGS = "no_timer_check pmtmr=0 noapictimer nohz=off";
  /**
   * The netdev that carries the input wake-up timer. QEMU 7.2 has no option for a timer of its
   * own, but {@code filter-buffer} re-arms one on QEMU_CLOCK_VIRTUAL every {@code interval}
   * microseconds; when it fires while the vCPU is halted, the main loop queues work on the vCPU
   * (qemu_timer_notify_cb, softmmu/cpu-timers.c), whose next pass takes the queued input events
   * (replay_async_events). The filter sits on a netdev that never carries a frame: a hub port
   * joined to a port of a second one-port hub (so QEMU sees a peer and warns about nothing). Both
   * QEMUs of a pair have it, so its timer fires at the same points of the recording and the replay.
   */
  public static final String INPUT_WAKE_NETDEV = "qft-wake";

  /** QEMU hub numbers of the input wake-up's two one-port hubs (nothing else uses hubs). */
  private static final int WAKE_HUB = 90;
  private static final String QEMU_PROPERTY = "qemuft.qemu";
  /** The file descriptor QEMU inherits its guest NIC's socket on. */
  static final int NIC_FD = 3;
  /**
   * Opens the guest NIC's socket ($1 host, $2 port) as fd 3, then becomes QEMU ($3...). A failed
   * redirection on exec does not end a non-interactive bash: it returns 1, hence the message.
   */
  private static final String NIC_WRAPPER = "exec " + NIC_FD + "<>\"/dev/udp/$1/$2\" || { echo \"qemu-ft: cannot "
      + "open the guest NIC's UDP socket to the controller at $1:$2 (is the loopback interface up?); QEMU not "
      + "started\" >&2; exit 1; }; shift 2; exec \"$@\"";

  private final VmSpec spec;
  private final Path runDir;
  private final String name;
  private Mode mode = Mode.ICOUNT;
  private Timers timers = Timers.REPLAY_FRIENDLY;
  private Path rrFile;
  private String rrSnapshot;
  private String loadvm;
  private InetSocketAddress guestNic;
  private Path snapshotStore;
  private boolean pauseOnShutdown;
  private Path shimLibrary;
  private Path shimRing;
  private final Map<String, String> env = new LinkedHashMap<>();
  private final List<String> extraArgs = new ArrayList<>();

  private QemuLaunch(VmSpec spec, Path runDir, String name) {
    this.spec = Objects.requireNonNull(spec, "spec");
    this.runDir = Objects.requireNonNull(runDir, "runDir");
    this.name = Objects.requireNonNull(name, "name");
    if (!name.matches("[A-Za-z0-9._-]{1,64}")) {
      throw new IllegalArgumentException("QEMU name '" + name + "' must be 1-64 of [A-Za-z0-9._-]");
    }
  }

  /** A QEMU named {@code name} (shown in ps and QMP) that keeps its files in {@code runDir}. */
  public static QemuLaunch of(VmSpec spec, Path runDir, String name) {
    return new QemuLaunch(spec, runDir, name);
  }

  /** Runs in {@code mode}; RECORD and REPLAY need {@code rrFile}, the others ignore it. */
  public QemuLaunch mode(Mode newMode, Path newRrFile) {
    this.mode = Objects.requireNonNull(newMode, "mode");
    this.rrFile = newRrFile;
    return this;
  }

  /** The board's timer devices and the guest's timer options; the default is REPLAY_FRIENDLY. */
  public QemuLaunch timers(Timers newTimers) {
    this.timers = Objects.requireNonNull(newTimers, "timers");
    return this;
  }

  /** {@code rrsnapshot=tag}: record saves it at start, replay loads it at start. */
  public QemuLaunch rrSnapshot(String tag) {
    this.rrSnapshot = tag;
    return this;
  }

  /** {@code -loadvm tag}: start from this snapshot (held by a disk or the snapshot store). */
  public QemuLaunch loadvm(String tag) {
    this.loadvm = tag;
    return this;
  }

  /**
   * Gives the guest a NIC ({@code virtio-net-pci,tx=timer}) whose frames travel as UDP datagrams,
   * one per Ethernet frame, between QEMU and {@code controllerEnd} (an address on 127.0.0.0/8;
   * {@code org.qemuft.controller.gate.GuestNic} owns it).
   *
   * <p>QEMU's socket is made before QEMU runs: QEMU is started through {@code /bin/bash}, which
   * opens a UDP socket connected to {@code controllerEnd} as file descriptor {@value #NIC_FD}
   * ({@code /dev/udp}) and then execs QEMU with {@code -netdev dgram,local.type=fd}. A connected
   * socket accepts datagrams from {@code controllerEnd} alone and, unlike the socket QEMU would
   * bind itself (it sets SO_REUSEADDR), lets no other socket share its port. A UDP send on
   * loopback never blocks, so QEMU completes every guest transmit when the log records it (see
   * GuestNic and docs/libftshim.md, "QEMU surprises").
   */
  public QemuLaunch guestNic(InetSocketAddress controllerEnd) {
    Objects.requireNonNull(controllerEnd, "controllerEnd");
    if (!(controllerEnd.getAddress() instanceof Inet4Address) || !controllerEnd.getAddress().isLoopbackAddress()
        || controllerEnd.getPort() == 0) {
      throw new IllegalArgumentException("the guest NIC's host end " + controllerEnd
          + " must be an IPv4 loopback address with a port (GuestNic.address())");
    }
    this.guestNic = controllerEnd;
    return this;
  }

  /**
   * A qcow2 image attached to no device, to hold VM snapshots of a machine whose disks cannot
   * (a diskless guest under record/replay needs one for savevm).
   */
  public QemuLaunch snapshotStore(Path qcow2) {
    this.snapshotStore = qcow2;
    return this;
  }

  /** {@code -action shutdown=pause}: a guest shutdown stops the VM instead of ending QEMU. */
  public QemuLaunch pauseOnShutdown(boolean pause) {
    this.pauseOnShutdown = pause;
    return this;
  }

  /** Preloads a library into QEMU ({@code LD_PRELOAD}) with its environment. */
  public QemuLaunch preload(Path library, Map<String, String> libraryEnv) {
    env.put("LD_PRELOAD", library.toAbsolutePath().toString());
    env.putAll(libraryEnv);
    return this;
  }

  /**
   * Records into, or replays from, the log ring {@code ring} instead of a file: preloads
   * libftshim ({@code library}) with {@code QEMUFT_SHIM_LOG} = this launch's rrfile (which QEMU
   * then never creates) and {@code QEMUFT_SHIM_RING} = {@code ring}, a ring the caller created
   * with {@code org.qemuft.nativeio.LogRing.create} and that nothing else writes (record) or
   * reads (replay). Needs {@link Mode#RECORD} or {@link Mode#REPLAY}; see docs/libftshim.md.
   */
  public QemuLaunch shim(Path library, Path ring) {
    this.shimLibrary = Objects.requireNonNull(library, "library");
    this.shimRing = Objects.requireNonNull(ring, "ring");
    return this;
  }

  /** Further QEMU arguments, appended last. */
  public QemuLaunch extraArgs(String... args) {
    extraArgs.addAll(List.of(args));
    return this;
  }

  public Path runDir() {
    return runDir;
  }

  public Path qmpSocket() {
    return runDir.resolve("qmp.sock");
  }

  public Path serialLog() {
    return runDir.resolve("serial.log");
  }

  /** QEMU's own stderr/stdout. */
  public Path qemuLog() {
    return runDir.resolve("qemu.log");
  }

  /** The QEMU binary: system property {@code qemuft.qemu}, else qemu-system-x86_64 on PATH. */
  public static String qemuBinary() {
    return System.getProperty(QEMU_PROPERTY, "qemu-system-x86_64");
  }

  /**
   * The complete command line: QEMU's, or with a {@link #guestNic} the bash wrapper that opens
   * the NIC's socket and execs QEMU's (the process is QEMU once it runs).
   */
  public List<String> command() {
    boolean rr = mode == Mode.RECORD || mode == Mode.REPLAY;
    if (rr && rrFile == null) {
      throw new IllegalStateException(mode + " needs a replay log file (rrfile)");
    }
    if (shimRing != null && !rr) {
      throw new IllegalStateException("the log ring " + shimRing + " needs mode RECORD or REPLAY, "
          + "not " + mode);
    }
    List<String> cmd = new ArrayList<>();
    if (guestNic != null) {
      cmd.addAll(List.of("/bin/bash", "-c", NIC_WRAPPER, "qemuft-guest-nic",
          guestNic.getAddress().getHostAddress(), Integer.toString(guestNic.getPort())));
    }
    cmd.add(qemuBinary());
    boolean friendly = timers == Timers.REPLAY_FRIENDLY;
    // debug-threads: QEMU names its threads ("CPU 0/TCG", "call_rcu", "worker"), for top -H and perf.
    cmd.addAll(List.of("-name", name + ",debug-threads=on", "-accel", "tcg", "-machine", friendly ? REPLAY_FRIENDLY_MACHINE : "pc", "-smp", "1"));
    cmd.addAll(List.of("-m", Integer.toString(spec.memoryMiB())));
    cmd.addAll(List.of("-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"));
    cmd.addAll(List.of("-kernel", spec.kernel().toString(), "-initrd", spec.initrd().toString()));
    if (friendly) {
      cmd.addAll(List.of("-rtc", "clock=vm"));
    }
    String append = "console=ttyS0 quiet panic=-1" + (friendly ? " " + REPLAY_FRIENDLY_KERNEL_ARGS : "");
    cmd.addAll(List.of("-append", spec.kernelArgs().isEmpty() ? append : append + " " + spec.kernelArgs()));
    cmd.addAll(List.of("-chardev", "file,id=serial0,path=" + opt(serialLog()), "-serial", "chardev:serial0"));
    cmd.addAll(List.of("-qmp", "unix:" + opt(qmpSocket()) + ",server=on,wait=off"));
    switch (mode) {
      case PLAIN -> { }
      case ICOUNT -> cmd.addAll(List.of("-icount", spec.icount()));
      case RECORD, REPLAY -> {
        String rrOpts = spec.icount() + ",rr=" + (mode == Mode.RECORD ? "record" : "replay")
            + ",rrfile=" + opt(rrFile) + (rrSnapshot == null ? "" : ",rrsnapshot=" + rrSnapshot);
        cmd.addAll(List.of("-icount", rrOpts));
      }
    }
    if (guestNic != null) {
      cmd.addAll(List.of("-netdev", "dgram,id=net0,local.type=fd,local.str=" + NIC_FD));
      cmd.addAll(List.of("-device", "virtio-net-pci,netdev=net0,tx=timer,mac=" + spec.mac()));
      if (rr) {
        cmd.addAll(List.of("-object", "filter-replay,id=net0-replay,netdev=net0"));
      }
    }
    if (friendly && spec.inputWakeUs() > 0) {
      cmd.addAll(List.of("-netdev", "hubport,id=" + INPUT_WAKE_NETDEV + ",hubid=" + WAKE_HUB));
      cmd.addAll(List.of("-netdev", "hubport,id=" + INPUT_WAKE_NETDEV + "-end,hubid=" + (WAKE_HUB + 1)
          + ",netdev=" + INPUT_WAKE_NETDEV));
      cmd.addAll(List.of("-object", "filter-buffer,id=" + INPUT_WAKE_NETDEV + "-timer,netdev=" + INPUT_WAKE_NETDEV
          + ",interval=" + spec.inputWakeUs()));
    }
    for (int i = 0; i < spec.disks().size(); i++) {
      String img = opt(spec.disks().get(i).location());
      String format = spec.disks().get(i).format();
      if (rr) {
        cmd.addAll(List.of("-drive", "file=" + img + ",if=none,id=disk" + i + "-img,format=" + format));
        cmd.addAll(List.of("-drive", "driver=blkreplay,if=none,image=disk" + i + "-img,id=disk" + i));
      } else {
        cmd.addAll(List.of("-drive", "file=" + img + ",if=none,id=disk" + i + ",format=" + format));
      }
      cmd.addAll(List.of("-device", "virtio-blk-pci,drive=disk" + i));
    }
    if (snapshotStore != null) {
      cmd.addAll(List.of("-drive", "file=" + opt(snapshotStore) + ",if=none,id=snapstore,format=qcow2"));
    }
    if (pauseOnShutdown) {
      cmd.addAll(List.of("-action", "shutdown=pause"));
    }
    if (loadvm != null) {
      cmd.addAll(List.of("-loadvm", loadvm));
    }
    cmd.addAll(extraArgs);
    return cmd;
  }

  /** Environment variables added to the inherited environment. */
  public Map<String, String> environment() {
    Map<String, String> all = new LinkedHashMap<>(env);
    if (shimRing != null) {
      // The shim compares this with the rrfile= QEMU was given, character for character.
      all.put("LD_PRELOAD", shimLibrary.toAbsolutePath().toString());
      all.put("QEMUFT_SHIM_LOG", rrFile == null ? "" : rrFile.toString());
      all.put("QEMUFT_SHIM_RING", shimRing.toAbsolutePath().toString());
    }
    return Map.copyOf(all);
  }

  /**
   * Starts QEMU. The run directory is created (mode 0700) and stale files of an earlier run in it
   * are removed. Returns once the process runs; use {@link QemuProcess#awaitQmp} to wait for QMP.
   *
   * @throws IOException if the run directory cannot be prepared or QEMU cannot be executed
   */
  public QemuProcess start() throws IOException {
    List<String> cmd = command();
    Files.createDirectories(runDir);
    Files.setPosixFilePermissions(runDir, PosixFilePermissions.fromString("rwx------"));
    for (Path p : List.of(qmpSocket(), serialLog(), qemuLog())) {
      Files.deleteIfExists(p);
    }
    ProcessBuilder pb = new ProcessBuilder(cmd)
        .redirectErrorStream(true)
        .redirectOutput(qemuLog().toFile())
        .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
    pb.environment().putAll(environment());
    Process process;
    try {
      process = pb.start();
    } catch (IOException e) {
      throw new IOException("cannot execute " + cmd.getFirst() + " (is qemu-system-x86 installed? "
          + "scripts/setup installs it; the guest NIC needs /bin/bash): " + e.getMessage(), e);
    }
    return new QemuProcess(name, process, cmd, qmpSocket(), serialLog(), qemuLog());
  }

  /** QEMU option values use ',' as separator; a literal comma is written twice. */
  private static String opt(Object value) {
    return value.toString().replace(",", ",,");
  }
}
