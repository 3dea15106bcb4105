package org.qemuft.storage;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * Disk images on shared storage, made with qemu-img (which reaches {@code nfs://} through QEMU's
 * own libnfs block driver, package qemu-block-extra):
 * <pre>
 *   images/NAME.qcow2                 base images (imported once, never written by a VM)
 *   vms/VM/epoch-EPOCH.qcow2          one overlay per VM and epoch: the disk as the epoch starts,
 *                                     backed by a base image (or an older epoch)
 *   vms/VM/epoch-EPOCH.ROLE.qcow2     the active layer of one QEMU (ROLE e.g. primary, backup),
 *                                     backed by the epoch's overlay
 * </pre>
 * Record and replay must start from the same disk content: both QEMUs of an epoch write to their
 * own active layer on top of the same epoch overlay, which nobody writes. A VM's internal
 * snapshots (savevm) live inside the image they are taken on.
 *
 * <p>Overlays name their backing file by its full location (path or {@code nfs://} URL), never
 * relatively: QEMU 7.2 resolves a relative backing name of an {@code nfs://} image wrongly (it
 * appends it to the overlay's own URL). So every host must reach the share by the same location.
 */
public final class Images {
  private static final Pattern VM = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,63}");
  private static final Pattern OVERLAY = Pattern.compile("epoch-([0-9]{1,19})(\\.[A-Za-z0-9_-]{1,32})?\\.qcow2");
  private static final Pattern ROLE = Pattern.compile("[A-Za-z0-9_-]{1,32}");

  private final SharedStorage storage;
  private final String qemuImg;
  private final Duration timeout;

  /**
   * @param qemuImg the qemu-img binary
   * @param timeout how long one qemu-img run may take before it is killed (qemu-img's NFS client
   *     has no timeout of its own: a dead server would hang it)
   */
  public Images(SharedStorage storage, String qemuImg, Duration timeout) {
    this.storage = Objects.requireNonNull(storage, "storage");
    this.qemuImg = Objects.requireNonNull(qemuImg, "qemuImg");
    this.timeout = Objects.requireNonNull(timeout, "timeout");
  }

  /** qemu-img from PATH, 10 minutes per run. */
  public Images(SharedStorage storage) {
    this(storage, "qemu-img", Duration.ofMinutes(10));
  }

  public static String baseName(String name) {
    check(name, "image name");
    return "images/" + name + ".qcow2";
  }

  public static String overlayName(String vm, long epoch) {
    check(vm, "VM name");
    if (epoch < 0) {
      throw new IllegalArgumentException("epoch " + epoch + " must not be negative");
    }
    return "vms/" + vm + "/epoch-" + epoch + ".qcow2";
  }

  /** {@code vms/VM/epoch-EPOCH.ROLE.qcow2}: one QEMU's active layer on the epoch's overlay. */
  public static String activeLayerName(String vm, long epoch, String role) {
    if (role == null || !ROLE.matcher(role).matches()) {
      throw new IllegalArgumentException("role '" + role + "' must be 1-32 of [A-Za-z0-9_-]");
    }
    String o = overlayName(vm, epoch);
    return o.substring(0, o.length() - ".qcow2".length()) + "." + role + ".qcow2";
  }

  /**
   * Copies a local image into {@code images/NAME.qcow2} as qcow2 ({@code qemu-img convert}).
   *
   * @return the image's storage name
   * @throws StorageException if the name is taken (base images are never replaced) or qemu-img fails
   */
  public String importBase(Path localImage, String name) throws StorageException {
    String target = baseName(name);
    if (!Files.isRegularFile(localImage)) {
      throw new IllegalArgumentException("image " + localImage + " does not exist");
    }
    refuseExisting(target, "base image");
    storage.createDirectories("images");
    qemuImg("convert", "-O", "qcow2", localImage.toAbsolutePath().toString(), storage.qemuLocation(target));
    return target;
  }

  /**
   * Creates the overlay of {@code vm} for {@code epoch}, backed by {@code backingName} (a storage
   * name, e.g. {@link #baseName} or an older overlay).
   *
   * @return the overlay's location for QEMU ({@code -drive file=})
   * @throws StorageException if the overlay exists already (an overlay is never overwritten: it
   *     holds a VM's disk) or the backing image is missing
   */
  public String createOverlay(String vm, long epoch, String backingName) throws StorageException {
    return createImage(overlayName(vm, epoch), backingName);
  }

  /**
   * Creates {@code vms/VM/epoch-EPOCH.ROLE.qcow2} on top of the epoch's overlay.
   *
   * @return its location for QEMU
   */
  public String createActiveLayer(String vm, long epoch, String role) throws StorageException {
    return createImage(activeLayerName(vm, epoch, role), overlayName(vm, epoch));
  }

  /**
   * Creates qcow2 image {@code name} backed by {@code backingName}; the same size.
   *
   * @return its location for QEMU
   */
  public String createImage(String name, String backingName) throws StorageException {
    String overlay = Names.check(name);
    Names.check(backingName);
    if (!storage.exists(backingName)) {
      throw new StorageException(storage.describe() + ": backing image " + backingName + " does not exist");
    }
    refuseExisting(overlay, "overlay");
    if (!Names.parent(overlay).isEmpty()) {
      storage.createDirectories(Names.parent(overlay));
    }
    qemuImg("create", "-q", "-f", "qcow2", "-b", storage.qemuLocation(backingName), "-F", "qcow2",
        storage.qemuLocation(overlay));
    return storage.qemuLocation(overlay);
  }

  /** The epochs that have an overlay (or an active layer) for {@code vm}, ascending, once each. */
  public List<Long> overlayEpochs(String vm) throws StorageException {
    check(vm, "VM name");
    java.util.TreeSet<Long> out = new java.util.TreeSet<>();
    for (String n : storage.list("vms/" + vm)) {
      var m = OVERLAY.matcher(n);
      if (m.matches()) {
        out.add(Long.parseLong(m.group(1)));
      }
    }
    return List.copyOf(out);
  }

  /**
   * Removes the overlays and active layers of {@code vm} for epochs before {@code keepFrom}, active
   * layers first. Only for chains no VM uses any more: an image that backs a newer one must stay
   * (a new epoch's overlay must not be backed by an older epoch's image if the older is pruned).
   *
   * @return how many files were removed
   */
  public int removeOverlaysBefore(String vm, long keepFrom) throws StorageException {
    check(vm, "VM name");
    int n = 0;
    List<String> names = new ArrayList<>(storage.list("vms/" + vm));
    // Active layers (epoch-N.ROLE.qcow2) before the epoch overlays they sit on.
    names.sort(java.util.Comparator.comparing((String s) -> s.chars().filter(c -> c == '.').count()).reversed());
    for (String name : names) {
      var m = OVERLAY.matcher(name);
      if (m.matches() && Long.parseLong(m.group(1)) < keepFrom && storage.delete("vms/" + vm + "/" + name)) {
        n++;
      }
    }
    return n;
  }

  /** Internal snapshot tags in an image ({@code qemu-img snapshot -l}). */
  public List<String> snapshots(String name) throws StorageException {
    Names.check(name);
    String out = qemuImg("snapshot", "-l", storage.qemuLocation(name));
    List<String> tags = new ArrayList<>();
    boolean table = false;
    for (String line : out.lines().toList()) {
      if (line.startsWith("ID")) {
        table = true;
      } else if (table && !line.isBlank()) {
        String[] f = line.trim().split("\\s+");
        if (f.length > 1) {
          tags.add(f[1]);
        }
      }
    }
    return tags;
  }

  private void refuseExisting(String name, String what) throws StorageException {
    if (storage.exists(name)) {
      throw new StorageException(storage.describe() + ": " + what + " " + name
          + " exists already; qemu-ft never overwrites an image. Remove it by hand if it is really unused.");
    }
  }

  private String qemuImg(String... args) throws StorageException {
    List<String> cmd = new ArrayList<>();
    cmd.add(qemuImg);
    cmd.addAll(List.of(args));
    String line = String.join(" ", cmd);
    try {
      Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
      byte[][] out = new byte[1][];
      Thread reader = Thread.ofPlatform().daemon().start(() -> {
        try {
          out[0] = p.getInputStream().readAllBytes();
        } catch (IOException e) {
          out[0] = new byte[0];
        }
      });
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.destroyForcibly();
        p.waitFor();
        throw new StorageUnavailableException(storage.describe() + ": " + line + " did not finish within "
            + timeout.toSeconds() + " s and was killed; is the NFS server reachable?", null);
      }
      reader.join();
      String text = new String(out[0], StandardCharsets.UTF_8).strip();
      if (p.exitValue() != 0) {
        throw new StorageException(storage.describe() + ": " + line + " failed (exit " + p.exitValue() + "): "
            + text + (text.contains("Unknown protocol 'nfs'")
                ? " - install qemu-block-extra (QEMU's nfs driver; scripts/setup does)" : ""));
      }
      return text;
    } catch (IOException e) {
      throw new StorageException("cannot run " + line + " (is qemu-utils installed?): " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StorageUnavailableException("interrupted while running " + line, e);
    }
  }

  private static void check(String name, String what) {
    if (name == null || !VM.matcher(name).matches()) {
      throw new IllegalArgumentException(what + " '" + name + "' must be 1-64 of [A-Za-z0-9._-], not starting"
          + " with '.' or '-'");
    }
  }
}
