package org.qemuft.controller.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.qemuft.controller.vm.VmSpec;

/**
 * One protected pair, as its YAML file describes it. Both hosts use the same file; the role is
 * given on the command line. Load with {@link #load(Path)}: everything is checked before anything
 * starts, and a bad file is refused with the field and the reason.
 *
 * <pre>
 * pair:
 *   id: web1                        # names rings, sockets, locks: [A-Za-z0-9._-]{1,64}
 *   epoch: 1                        # the pairing's generation (default 1)
 *   secretFile: /etc/qemu-ft/web1.secret   # >= 16 bytes, mode 0600
 *   primary: {channel: 10.0.0.1:7700}      # where each host's controller listens for its peer
 *   backup:  {channel: 10.0.0.2:7700}
 * vm:
 *   kernel: /var/lib/qemu-ft/vmlinuz
 *   initrd: /var/lib/qemu-ft/initrd.img
 *   kernelArgs: "qemuft.ip=192.168.50.10/24"
 *   memoryMiB: 256
 *   mac: "52:54:00:12:34:56"
 *   icount: "shift=0"              # see docs/rr-pace.md before changing it
 *   inputWakeUs: 0                  # host-side input wake-up (µs), 0: off; see docs/pair.md
 *   disks: []                       # qcow2 locations: paths or nfs:// URLs
 * uplink: {tap: qfttap0}            # the LAN side of the output gate
 * storage: {location: nfs://nas/export/qemu-ft}   # shared storage (go-live lock, images)
 * runtime: {dir: /run/qemu-ft}      # sockets, rings, QEMU run directories
 * flowControl: {maxLagBytes: 16MiB, maxLagMs: 500, ringBytes: 4MiB, backupBufferBytes: 64MiB}
 * channel: {heartbeatInterval: 50ms, peerTimeout: 500ms, compression: zstd}
 * </pre>
 */
public record FtConfig(
    Path file,
    Pair pair,
    VmSpec vm,
    Uplink uplink,
    String storage,
    Path runtimeDir,
    FlowControl flowControl,
    Channel channel) {

  /**
   * The icount settings used when the file names none: a fixed shift of 0 (one nanosecond of guest
   * time per instruction) with QEMU's default sleep=on. Chosen in docs/rr-pace.md (the backup
   * replays within ~1.1x of the primary's pace) and docs/go-live.md (the guest clock is
   * continuous across go-live; shift=auto made it jump by seconds).
   */
  public static final String DEFAULT_ICOUNT = "shift=0";

  private static final Pattern ID = Pattern.compile("[A-Za-z0-9._-]{1,64}");
  private static final Pattern IFNAME = Pattern.compile("[A-Za-z0-9._-]{1,15}");
  private static final Pattern HOST_PORT = Pattern.compile("(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):(\\d{1,5})");

  public enum Role {
    PRIMARY,
    BACKUP;

    public String lower() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }
  }

  public record Pair(String id, long epoch, Path secretFile, InetSocketAddress primaryChannel,
      InetSocketAddress backupChannel) {
    /** Where the controller in {@code role} listens for its peer. */
    public InetSocketAddress channel(Role role) {
      return role == Role.PRIMARY ? primaryChannel : backupChannel;
    }
  }

  public record Uplink(String tap) {}

  /**
   * How far the primary may run ahead (docs/pair.md, "Flow control"): {@code maxLagBytes} of log
   * and {@code maxLag} of guest execution not yet replayed by the backup; past either, the primary
   * is held. {@code ringBytes}: the shared-memory ring QEMU logs into; {@code backupBufferBytes}:
   * what the backup holds received and not yet replayed.
   */
  public record FlowControl(long maxLagBytes, Duration maxLag, long ringBytes, long backupBufferBytes) {}

  public record Channel(Duration heartbeatInterval, Duration peerTimeout, boolean compression) {}

  /** The directory of this role's sockets and rings: {@code runtime.dir/<pair id>/<role>}. */
  public Path runDir(Role role) {
    return runtimeDir.resolve(pair.id()).resolve(role.lower());
  }

  /** The controller's control socket (status) for {@code role}. */
  public Path controlSocket(Role role) {
    return runDir(role).resolve("control.sock");
  }

  /**
   * Reads and checks {@code file}.
   *
   * @throws ConfigException naming the file, the field and the reason, if anything is wrong
   */
  public static FtConfig load(Path file) throws ConfigException {
    String name = file.toString();
    JsonNode root;
    try {
      root = new ObjectMapper(new YAMLFactory()).readTree(Files.readString(file));
    } catch (NoSuchFileException e) {
      throw new ConfigException(name + ": no such file");
    } catch (IOException e) {
      throw new ConfigException(name + ": not readable as YAML: " + firstLine(e.getMessage()), e);
    }
    Path base = file.toAbsolutePath().getParent();
    Fields top = Fields.root(name, root);

    Fields p = top.section("pair", true);
    String id = p.string("id", null, ID, "1-64 of [A-Za-z0-9._-]");
    long epoch = p.integer("epoch", 1, 1, Long.MAX_VALUE);
    Path secret = p.path("secretFile", base, null);
    InetSocketAddress primary = address(p.section("primary", true), "channel");
    InetSocketAddress backup = address(p.section("backup", true), "channel");
    p.noOthers();
    if (primary.equals(backup)) {
      throw p.error("backup.channel", "is the same address as pair.primary.channel (" + hostPort(primary)
          + "); each controller needs its own");
    }
    Pair pair = new Pair(id, epoch, secret, primary, backup);

    Fields v = top.section("vm", true);
    VmSpec vm;
    Path kernel = v.path("kernel", base, null);
    Path initrd = v.path("initrd", base, null);
    String kernelArgs = v.string("kernelArgs", "");
    long mem = v.integer("memoryMiB", 256, 64, 1 << 20);
    String mac = v.string("mac", null, Pattern.compile("(?i)[0-9a-f]{2}(:[0-9a-f]{2}){5}"),
        "a MAC address like 52:54:00:12:34:56");
    if ((Integer.parseInt(mac.substring(0, 2), 16) & 1) != 0) {
      throw v.error("mac", mac + " is a multicast address; a NIC needs a unicast one (first byte even)");
    }
    String icount = v.string("icount", DEFAULT_ICOUNT);
    long wake = v.integer("inputWakeUs", VmSpec.DEFAULT_INPUT_WAKE_US, 0, 1_000_000); // VmSpec checks the floor
    List<VmSpec.Disk> disks = new ArrayList<>();
    for (String d : v.strings("disks")) {
      disks.add(new VmSpec.Disk(d.startsWith("nfs://") ? d : base.resolve(d).normalize().toString()));
    }
    v.noOthers();
    for (Path f : List.of(kernel, initrd)) {
      if (!Files.isReadable(f)) {
        throw v.error(f == kernel ? "kernel" : "initrd", f + " does not exist or is not readable");
      }
    }
    try {
      vm = new VmSpec(kernel, initrd, kernelArgs, (int) mem, mac, icount, disks, (int) wake);
    } catch (IllegalArgumentException e) {
      String field = Stream.of("icount", "inputWakeUs").filter(e.getMessage()::startsWith).findFirst().orElse("disks");
      throw v.error(field, e.getMessage());
    }

    Fields u = top.section("uplink", false);
    String tap = u.has("tap") ? u.string("tap", null, IFNAME, "a network interface name (1-15 of [A-Za-z0-9._-])") : null;
    u.noOthers();

    Fields s = top.section("storage", false);
    String storage = s.has("location") ? s.string("location", null) : null;
    s.noOthers();

    Fields r = top.section("runtime", false);
    Path runtimeDir = r.path("dir", base, "/run/qemu-ft");
    r.noOthers();

    Fields f = top.section("flowControl", false);
    long ring = f.size("ringBytes", 4L << 20, 64L << 10, 1L << 30);
    if (Long.bitCount(ring) != 1) {
      throw f.error("ringBytes", ring + " is not a power of two (e.g. 4MiB, 8MiB)");
    }
    long buffer = f.size("backupBufferBytes", 64L << 20, 64L << 10, 16L << 30);
    if (Long.bitCount(buffer) != 1) {
      throw f.error("backupBufferBytes", buffer + " is not a power of two (e.g. 64MiB)");
    }
    long maxLagBytes = f.size("maxLagBytes", 16L << 20, 64L << 10, 16L << 30);
    Duration maxLag = f.duration("maxLagMs", Duration.ofMillis(500), Duration.ofMillis(1), Duration.ofMinutes(10));
    f.noOthers();
    if (maxLagBytes > buffer) {
      throw f.error("maxLagBytes", maxLagBytes + " bytes exceeds backupBufferBytes (" + buffer
          + "): the backup could not hold that much unreplayed log");
    }

    Fields c = top.section("channel", false);
    Duration hb = c.duration("heartbeatInterval", Duration.ofMillis(50), Duration.ofMillis(5), Duration.ofSeconds(10));
    Duration timeout = c.duration("peerTimeout", Duration.ofMillis(500), Duration.ofMillis(20), Duration.ofMinutes(5));
    String compression = c.string("compression", "zstd", Pattern.compile("zstd|none"), "zstd or none");
    c.noOthers();
    if (timeout.compareTo(hb.multipliedBy(3)) < 0) {
      throw c.error("peerTimeout", timeout.toMillis() + " ms is less than three heartbeat intervals ("
          + hb.multipliedBy(3).toMillis() + " ms): a single late heartbeat would look like a dead peer");
    }

    top.noOthers();
    return new FtConfig(file, pair, vm, tap == null ? null : new Uplink(tap), storage, runtimeDir,
        new FlowControl(maxLagBytes, maxLag, ring, buffer),
        new Channel(hb, timeout, compression.equals("zstd")));
  }

  private static InetSocketAddress address(Fields f, String field) throws ConfigException {
    String s = f.string(field, null);
    var m = HOST_PORT.matcher(s);
    if (!m.matches()) {
      throw f.error(field, "'" + s + "' is not HOST:PORT (e.g. 10.0.0.1:7700)");
    }
    int port = Integer.parseInt(m.group(2));
    if (port < 1 || port > 65535) {
      throw f.error(field, "port " + port + " is outside 1..65535");
    }
    f.noOthers();
    String host = m.group(1).replaceAll("^\\[|\\]$", "");
    return InetSocketAddress.createUnresolved(host, port);
  }

  public static String hostPort(InetSocketAddress a) {
    return a.getHostString() + ":" + a.getPort();
  }

  private static String firstLine(String s) {
    return s == null ? "" : s.lines().findFirst().orElse("");
  }
}
