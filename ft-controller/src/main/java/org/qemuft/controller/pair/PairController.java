package org.qemuft.controller.pair;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.qemuft.controller.channel.ChannelSettings;
import org.qemuft.controller.channel.ChannelStats;
import org.qemuft.controller.channel.LogChannel;
import org.qemuft.controller.config.FtConfig;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.controller.gate.GuestNic;
import org.qemuft.controller.gate.OutputGate;
import org.qemuft.controller.status.ControlServer;
import org.qemuft.controller.vm.QemuLaunch;
import org.qemuft.controller.vm.QemuLaunch.Mode;
import org.qemuft.controller.vm.QemuProcess;
import org.qemuft.nativeio.LogRing;
import org.qemuft.nativeio.ReplayFeed;
import org.qemuft.nativeio.Tap;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.qmp.QmpClient;
import org.qemuft.qmp.QmpException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One host's controller of a protected pair (design.md steps 1–6), in the role it was started
 * in. It owns everything it starts — its QEMU, the shared-memory ring, the guest NIC socket, the
 * uplink, the logging channel, the control socket — and {@link #close()} ends all of it.
 *
 * <p>The primary records; its output gate holds every frame the guest sends until the backup has
 * acknowledged the log behind it. The backup replays; its guest's frames go nowhere. When the
 * guest powers off, each controller notes its QEMU's final instruction count, stops its QEMU and
 * ends ({@link #awaitEnd()} returns).
 */
public final class PairController implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(PairController.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Duration QMP_TIMEOUT = Duration.ofSeconds(10);
  private static final Duration QEMU_START = Duration.ofSeconds(60);
  private static final Duration NIC_ATTACH = Duration.ofSeconds(30);
  private static final Duration ACK_TICK = Duration.ofMillis(20);
  private static final int MIN_SECRET = 16;
  /** Frames the gate may hold, in bytes, before it drops new ones as a full NIC queue would. */
  private static final long GATE_BYTES = 8L << 20;

  private final FtConfig config;
  private final Role role;
  private final Path runDir;
  private final Deque<AutoCloseable> owned = new ArrayDeque<>();
  private final Object closing = new Object();
  private final CountDownLatch ended = new CountDownLatch(1);
  private final LongAdder backupFramesDropped = new LongAdder();
  private final long startedNanos = System.nanoTime();
  private final ScheduledExecutorService ticker =
      Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon().name("pair-tick").unstarted(r));

  private LogRing ring;
  private Path ringPath;
  private QemuProcess qemu;
  private QemuMonitor monitor;
  private LogChannel channel;
  private OutputGate gate;
  private GuestNic nic;
  private LogShipper shipper;
  private LogReceiver receiver;
  private Thread worker;
  private volatile long finalIcount = -1;
  private volatile String endReason;
  private volatile int exitCode = -1;
  /** Whether this controller owns the run directory (else it must not write into it). */
  private volatile boolean runDirLocked;

  private PairController(FtConfig config, Role role) {
    this.config = config;
    this.role = role;
    this.runDir = config.runDir(role);
  }

  /**
   * Starts this host's side of the pair: everything is up and QEMU runs when this returns.
   *
   * @param shim libftshim.so, preloaded into QEMU
   * @throws IOException naming what could not be set up (nothing is left running)
   */
  public static PairController start(FtConfig config, Role role, Path shim) throws IOException, InterruptedException {
    PairController c = new PairController(config, role);
    try {
      c.setUp(shim);
      return c;
    } catch (IOException | RuntimeException | InterruptedException e) {
      c.close();
      throw e;
    }
  }

  private void setUp(Path shim) throws IOException, InterruptedException {
    byte[] secret = readSecret(config.pair().secretFile());
    Files.createDirectories(runDir);
    Files.setPosixFilePermissions(runDir, PosixFilePermissions.fromString("rwx------"));
    owned.push(ticker::shutdownNow);

    lockRunDir();
    ringPath = Path.of("/dev/shm", "qemuft-" + config.pair().id() + "-" + config.pair().epoch() + "-" + role.lower());
    removeStaleRing(ringPath);
    ring = LogRing.create(ringPath, config.flowControl().ringBytes());
    owned.push(() -> {
      ring.close();
      Files.deleteIfExists(ringPath);
    });

    ChannelSettings settings = new ChannelSettings(config.pair().id(), config.pair().epoch(), secret,
        config.channel().compression(), config.channel().heartbeatInterval(), config.channel().peerTimeout());
    QemuLaunch launch = QemuLaunch.of(config.vm(), runDir.resolve("qemu"), "qemuft-" + config.pair().id() + "-" + role.lower())
        .pauseOnShutdown(true)
        .shim(shim, ringPath);
    if (role == Role.PRIMARY) {
      setUpPrimary(settings, launch);
    } else {
      setUpBackup(settings, launch);
    }

    owned.push(ControlServer.start(config.controlSocket(role), this::status));
    LOG.info("{} of pair {} epoch {} is up: QEMU pid {}, control socket {}", role.lower(), config.pair().id(),
        config.pair().epoch(), qemu.pid(), config.controlSocket(role));
  }

  private void setUpPrimary(ChannelSettings settings, QemuLaunch launch)
      throws IOException, InterruptedException {
    Tap tap = config.uplink() == null ? null : Tap.open(config.uplink().tap());
    if (tap != null) {
      owned.push(tap);
    }
    gate = new OutputGate(frame -> {
      if (tap != null) {
        tap.write(frame, 0, frame.length);
      }
    }, GATE_BYTES);
    nic = GuestNic.open(frame -> {
      gate.hold(frame, ring.writePosition());
      ring.wakeReader(); // the shipper may be waiting for a batch of log: this frame waits for the next event
    }, "guest-nic");
    owned.push(nic);
    launch.guestNic(nic.address());
    if (tap != null) {
      Thread up = Thread.ofPlatform().daemon().name("uplink " + tap.name()).start(() -> uplinkToGuest(tap));
      owned.push(() -> {
        tap.close(); // ends the uplink thread's read
        up.join(5000);
      });
    }
    shipper = new LogShipper(ring, gate, windowBytes(config.flowControl().maxLagBytes()),
        config.flowControl().maxLagBytes(), config.flowControl().maxLag(), icountShift(config.vm().icount()));
    channel = LogChannel.dial(resolved(config.pair().backupChannel()), settings, shipper);
    shipper.attach(channel);
    owned.push(channel);
    owned.push(shipper::stop);

    startQemu(launch.mode(Mode.RECORD, runDir.resolve("replay.log")));
    worker = Thread.ofPlatform().name("log-shipper").start(() -> {
      shipper.run();
      if (shipper.failure() != null) {
        end(1, shipper.failure());
      }
    });
  }

  private void setUpBackup(ChannelSettings settings, QemuLaunch launch)
      throws IOException, InterruptedException {
    // The backup's guest believes it transmits; under replay QEMU drops the frames anyway, and
    // whatever reaches the socket goes nowhere (design.md step 5).
    nic = GuestNic.open(frame -> backupFramesDropped.increment(), "guest-nic");
    owned.push(nic);
    launch.guestNic(nic.address());
    // STOP_THERE: the backup stops exactly where the primary's guest asked to power off.
    ReplayFeed feed = new ReplayFeed(ring, 0, ReplayFeed.AtGuestPowerOff.STOP_THERE);
    long buffer = config.flowControl().backupBufferBytes();
    if (buffer > 1L << 30) {
      throw new IOException("flowControl.backupBufferBytes " + buffer + " is more than this controller can hold "
          + "in memory (1 GiB)");
    }
    receiver = new LogReceiver(feed, (int) buffer);
    owned.push(receiver::stop);
    channel = LogChannel.listen(resolved(config.pair().backupChannel()), settings, receiver, receiver::heldEnd);
    receiver.attach(channel);
    owned.push(channel);

    // Feed before QEMU starts: a replaying QEMU reads the log's first event before it even
    // opens its QMP socket (replay_configure runs early in qemu_init).
    worker = Thread.ofPlatform().name("replay-feeder").start(() -> {
      receiver.runFeeder();
      if (receiver.failure() != null) {
        end(1, receiver.failure());
      }
    });
    ticker.scheduleWithFixedDelay(receiver::ackIfReplayMoved, ACK_TICK.toMillis(), ACK_TICK.toMillis(),
        TimeUnit.MILLISECONDS);
    startQemu(launch.mode(Mode.REPLAY, runDir.resolve("replay.log")));
  }

  private void startQemu(QemuLaunch launch) throws IOException, InterruptedException {
    qemu = launch.start();
    owned.push(qemu);
    qemu.awaitQmp(QEMU_START); // says why, with QEMU's log, if QEMU does not come up
    nic.attach(qemu.pid(), NIC_ATTACH); // its socket was made before QEMU ran
    QmpClient client = QmpClient.connect(qemu.qmpSocket(), QMP_TIMEOUT);
    owned.push(client);
    try {
      if (qemu.idleMonitorIoThread() == 0) {
        LOG.warn("{} has no QMP monitor I/O thread to put under SCHED_IDLE; it keeps its share of the CPU", qemu);
      }
    } catch (IOException e) { // costs speed, not correctness
      LOG.warn("{}: {}; its QMP monitor I/O thread keeps its share of the CPU", qemu, e.getMessage());
    }
    monitor = new QemuMonitor(client);
    client.onEvent("SHUTDOWN", e -> Thread.ofPlatform().daemon().name("guest-off").start(this::guestPoweredOff));
    Thread.ofPlatform().daemon().name("qemu-watch").start(this::watchQemu);
  }

  /**
   * The guest powered off and QEMU paused (-action shutdown=pause). Both controllers report the
   * icount at the guest's power-off request as the log has it (QEMU 7.2 logs the request before
   * the instructions its vCPU ran until the VM stopped: {@link
   * org.qemuft.replaylog.ReplayEventKind#isGuestPowerOff}): the primary from the log it shipped,
   * the backup from its QEMU, which its {@link ReplayFeed} ({@code STOP_THERE}) fed the log up to
   * that request and then END, so it stopped exactly there. The primary waits until the backup holds the log up to the
   * request (it needs it to get there), then ends; the backup ends once its QEMU has stopped.
   */
  private void guestPoweredOff() {
    try {
      long executed = monitor.queryReplay().icount();
      if (role == Role.PRIMARY) {
        long[] at = awaitPowerOffInLog(shipper::powerOff);
        finalIcount = at[1];
        LOG.info("the guest powered off at icount {} of the log (QEMU executed {} in all); waiting for the "
            + "backup to hold the log up to there", at[1], executed);
        long lastNote = System.nanoTime();
        while (shipper.stats().acked() < at[0] && shipper.failure() == null && ended.getCount() > 0) {
          if (System.nanoTime() - lastNote > 10_000_000_000L) {
            LOG.warn("the backup has acknowledged the log up to {} of {}: still waiting before stopping",
                shipper.stats().acked(), at[0]);
            lastNote = System.nanoTime();
          }
          Thread.sleep(10);
        }
        end(0, "the guest powered off at icount " + at[1]);
      } else {
        finalIcount = executed;
        long asked = receiver.powerOff().map(ReplayFeed.GuestPowerOff::icount).orElse(-1L);
        if (asked >= 0 && asked != executed) {
          end(1, "the backup's guest stopped at icount " + executed + " but the primary's asked to stop at "
              + asked + ": the replay diverged");
        } else if (asked < 0) {
          end(1, "the backup's guest powered off at icount " + executed + " on its own, without the primary's"
              + " guest asking to: the replay diverged");
        } else {
          end(0, "the guest powered off at icount " + executed + ", exactly where the primary's did");
        }
      }
    } catch (QmpException e) {
      end(1, "the guest powered off but QEMU did not answer query-replay: " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Waits (bounded) until the shipper has read the guest's power-off request from the ring. */
  private long[] awaitPowerOffInLog(java.util.function.Supplier<long[]> powerOff) throws InterruptedException {
    long deadline = System.nanoTime() + QMP_TIMEOUT.toNanos();
    long[] at;
    while ((at = powerOff.get())[0] < 0 && System.nanoTime() < deadline) {
      Thread.sleep(5);
    }
    return at;
  }

  private void watchQemu() {
    try {
      var code = qemu.awaitExit(Duration.ofDays(365 * 100));
      if (ended.getCount() > 0) {
        end(1, "QEMU (pid " + qemu.pid() + ") exited unexpectedly with status " + code.orElse(-1)
            + "; see " + runDir.resolve("qemu/qemu.log"));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void uplinkToGuest(Tap tap) {
    byte[] buf = new byte[Tap.MAX_FRAME];
    try {
      while (true) {
        int n = tap.read(buf, Duration.ofMillis(500));
        if (n < 0) {
          return;
        }
        if (n > 0) {
          nic.sendToGuest(buf, 0, n);
        }
      }
    } catch (IOException e) {
      LOG.error("uplink {} failed: {}; the guest receives nothing from the LAN now", tap.name(), e.getMessage());
    }
  }

  private void end(int code, String reason) {
    synchronized (this) {
      if (ended.getCount() == 0) {
        return;
      }
      exitCode = code;
      endReason = reason;
    }
    if (code == 0) {
      LOG.info("{} ends: {}", role.lower(), reason);
    } else {
      LOG.error("{} ends: {}", role.lower(), reason);
    }
    writeFinalStatus();
    ended.countDown();
  }

  /** Waits until the controller has ended; returns its exit code (0: the guest powered off). */
  public int awaitEnd() throws InterruptedException {
    ended.await();
    return exitCode;
  }

  /** Why it ended, once it has. */
  public String endReason() {
    return endReason;
  }

  private void writeFinalStatus() {
    if (!runDirLocked) {
      return; // another controller owns the run directory (or we never got that far)
    }
    try {
      ObjectNode s = status();
      s.put("ended", endReason);
      s.put("exitCode", exitCode);
      Path f = runDir.resolve("final-status.json");
      Path tmp = runDir.resolve("final-status.json.tmp");
      Files.writeString(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(s));
      Files.move(tmp, f, java.nio.file.StandardCopyOption.ATOMIC_MOVE, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException | RuntimeException e) {
      LOG.warn("could not write the final status into {}: {}", runDir, e.toString());
    }
  }

  /** What {@code ftctl status} shows. */
  public ObjectNode status() {
    ObjectNode s = JSON.createObjectNode();
    s.put("pair", config.pair().id());
    s.put("role", role.lower());
    s.put("epoch", config.pair().epoch());
    s.put("uptimeMs", (System.nanoTime() - startedNanos) / 1_000_000);
    ObjectNode q = s.putObject("qemu");
    if (qemu != null) {
      q.put("pid", qemu.pid());
      q.put("running", qemu.isAlive());
    }
    ObjectNode peer = s.putObject("peer");
    ObjectNode log = s.putObject("log");
    ObjectNode icount = s.putObject("icount");
    if (channel != null) {
      ChannelStats cs = channel.stats();
      peer.put("connected", channel.connected());
      peer.put("lastHeardMs", cs.lastFrameAgeMs());
      peer.put("connects", cs.connects());
      peer.put("authFailures", cs.authFailures());
      peer.put("resets", cs.resets());
      ObjectNode wire = s.putObject("wire");
      wire.put("logBytesRaw", cs.logBytesRaw());
      wire.put("logBytesWire", cs.logBytesWire());
      wire.put("compression", config.channel().compression() ? "zstd" : "none");
    }
    if (shipper != null) {
      LogShipper.Stats st = shipper.stats();
      log.put("produced", st.produced());
      log.put("shipped", st.shipped());
      log.put("acknowledged", st.acked());
      log.put("replayed", st.replayed());
      log.put("lagBytes", st.lagBytes());
      log.put("lagMs", st.lagMs());
      ObjectNode fc = s.putObject("flowControl");
      fc.put("holdingPrimary", st.holding());
      fc.put("stalls", st.stalls());
      fc.put("stalledMs", st.stallMs());
      fc.put("maxLagBytes", config.flowControl().maxLagBytes());
      fc.put("maxLagMs", config.flowControl().maxLag().toMillis());
      // From the log, not from QEMU: a primary held by flow control (its vCPU blocked in a log
      // write) answers QMP only once the backup has caught up.
      icount.put("record", st.shippedIcount());
      icount.put("replay", st.replayIcount());
    }
    if (gate != null) {
      OutputGate.Stats g = gate.stats();
      ObjectNode gs = s.putObject("gate");
      gs.put("heldFrames", g.heldNow());
      gs.put("heldBytes", g.heldBytes());
      gs.put("released", g.released());
      gs.put("dropped", g.dropped());
      gs.put("uplinkErrors", g.uplinkErrors());
      gs.put("holdP50Us", g.holdP50Nanos() / 1000);
      gs.put("holdP99Us", g.holdP99Nanos() / 1000);
      gs.put("waitEventP99Us", g.waitEventP99Nanos() / 1000);
    }
    if (receiver != null) {
      LogReceiver.Stats st = receiver.stats();
      log.put("received", st.held());
      log.put("acknowledged", st.held());
      log.put("replayed", st.replayed());
      log.put("lagBytes", st.bufferedBytes());
      icount.put("received", st.receivedIcount());
      icount.put("replay", st.replayIcount());
    }
    if (nic != null) {
      ObjectNode n = s.putObject("guestNic");
      n.put("framesFromGuest", nic.framesFromGuest());
      n.put("framesToGuest", nic.framesToGuest());
      n.put("kernelDrops", nic.kernelDrops());
      if (role == Role.BACKUP) {
        n.put("framesDropped", backupFramesDropped.sum());
      }
    }
    if (finalIcount >= 0) {
      icount.put("atPowerOff", finalIcount);
    }
    return s;
  }

  /** Stops everything this controller started, newest first; QEMU is stopped, not left behind. */
  @Override
  public void close() {
    end(exitCode < 0 ? 0 : exitCode, endReason == null ? "stopped" : endReason);
    if (shipper != null) {
      shipper.releaseForGood(); // a QEMU held by flow control could not act on its SIGTERM
    }
    // ftctl run calls this from its main thread and, on SIGTERM, from a shutdown hook at the same
    // time. One at a time: otherwise the hook could find nothing left to close and let the JVM
    // exit while the main thread was still stopping QEMU and removing the ring.
    synchronized (closing) {
      while (!owned.isEmpty()) {
        AutoCloseable c = owned.pop();
        try {
          c.close();
        } catch (Exception e) {
          LOG.warn("stopping {}: {}", c, e.toString());
        }
      }
      if (worker != null) {
        worker.interrupt();
      }
    }
  }

  /**
   * One controller per pair and role on a host: an exclusive lock on {@code controller.lock} in
   * the run directory, held until the JVM ends (the kernel drops it even after kill -9). Whatever
   * a dead predecessor left behind is then known to be stale.
   */
  private void lockRunDir() throws IOException {
    Path file = runDir.resolve("controller.lock");
    java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file,
        java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.READ,
        java.nio.file.StandardOpenOption.WRITE);
    java.nio.channels.FileLock lock;
    try {
      lock = ch.tryLock();
    } catch (IOException | RuntimeException e) {
      ch.close();
      throw new IOException("cannot lock " + file + ": " + e.getMessage(), e);
    }
    if (lock == null) {
      String holder = Files.readString(file).strip();
      ch.close();
      throw new IOException("another controller of pair " + config.pair().id() + " (" + role.lower()
          + ") is running on this host" + (holder.isEmpty() ? "" : " (pid " + holder + ")")
          + "; stop it first, or use another runtime.dir");
    }
    runDirLocked = true;
    ch.truncate(0);
    ch.write(java.nio.ByteBuffer.wrap(Long.toString(ProcessHandle.current().pid()).getBytes(
        java.nio.charset.StandardCharsets.US_ASCII)));
    owned.push(ch);
  }

  /**
   * A ring with this controller's name that exists now was left by a controller that died: remove
   * it, unless a QEMU that died with it is still alive and using it (then refuse: two QEMUs of one
   * VM must never run).
   */
  private static void removeStaleRing(Path path) throws IOException {
    if (!Files.exists(path)) {
      return;
    }
    int[] pids;
    try (LogRing stale = LogRing.open(path)) {
      pids = stale.claimants();
    } catch (IOException e) {
      LOG.warn("removing {}, left behind by an earlier run and unreadable: {}", path, e.getMessage());
      Files.deleteIfExists(path);
      return;
    }
    for (int pid : pids) {
      if (pid != 0 && pid != ProcessHandle.current().pid()
          && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
        throw new IOException("the log ring " + path + " of an earlier run is still used by process " + pid
            + " (" + ProcessHandle.of(pid).flatMap(h -> h.info().command()).orElse("?") + "): a QEMU of this "
            + "VM is still running without its controller; stop it (kill " + pid + ") before starting another");
      }
    }
    LOG.warn("removing the log ring {} left behind by an earlier run (its processes are gone)", path);
    Files.delete(path);
  }

  /** The configuration keeps host names as written; the channel needs an address. */
  private static java.net.InetSocketAddress resolved(java.net.InetSocketAddress a) throws IOException {
    java.net.InetSocketAddress r = new java.net.InetSocketAddress(a.getHostString(), a.getPort());
    if (r.isUnresolved()) {
      throw new IOException("cannot resolve the channel address " + FtConfig.hostPort(a) + " (pair.*.channel)");
    }
    return r;
  }

  /**
   * The -icount shift, by which flow control counts instructions as guest time. With shift=auto
   * QEMU varies it; flow control then counts an instruction as 1 ns, the least it can be, so the
   * time bound holds off longer than {@code maxLagMs} says (docs/pair.md).
   */
  static int icountShift(String icount) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?:^|,)shift=(\\d+)(?:,|$)").matcher(icount);
    return m.find() ? Math.min(10, Integer.parseInt(m.group(1))) : 0; // QEMU refuses more than 10
  }

  private static int windowBytes(long maxLagBytes) {
    long w = Long.highestOneBit(Math.max(maxLagBytes, 1 << 20) - 1) << 1;
    return (int) Math.min(w, 1L << 30);
  }

  private static byte[] readSecret(Path file) throws IOException {
    Set<PosixFilePermission> perms;
    try {
      perms = Files.getPosixFilePermissions(file);
    } catch (java.nio.file.NoSuchFileException e) {
      throw new IOException("the channel secret " + file + " does not exist (pair.secretFile); create it with "
          + "'head -c 32 /dev/urandom > " + file + "; chmod 600 " + file + "' and copy it to both hosts");
    }
    if (perms.stream().anyMatch(p -> p.name().startsWith("GROUP") || p.name().startsWith("OTHERS"))) {
      throw new IOException("the channel secret " + file + " is readable by others (mode "
          + PosixFilePermissions.toString(perms) + "); chmod 600 " + file);
    }
    byte[] secret = Files.readAllBytes(file);
    if (secret.length < MIN_SECRET) {
      throw new IOException("the channel secret " + file + " has " + secret.length + " bytes; it needs at least "
          + MIN_SECRET + " (e.g. head -c 32 /dev/urandom)");
    }
    return secret;
  }
}
