package org.qemuft.controller.vm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.qemuft.controller.vm.QemuLaunch.Mode;

class QemuLaunchTest {
  private static final VmSpec SPEC = new VmSpec(Path.of("/g/vmlinuz"), Path.of("/g/initrd.img"), "",
      256, "52:54:00:12:34:56", "shift=auto", List.of());

  @Test
  void theShimGetsTheRrfileQemuGetsAndTheRing() {
    QemuLaunch l = QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x")
        .shim(Path.of("/lib/libftshim.so"), Path.of("/dev/shm/qemuft-ring"))
        .mode(Mode.RECORD, Path.of("/run/x/replay,1.bin"));
    Map<String, String> env = l.environment();
    assertThat(env).containsEntry("LD_PRELOAD", "/lib/libftshim.so")
        .containsEntry("QEMUFT_SHIM_LOG", "/run/x/replay,1.bin")
        .containsEntry("QEMUFT_SHIM_RING", "/dev/shm/qemuft-ring");
    // QEMU reads ",," as a literal comma; the shim undoes the doubling before comparing.
    assertThat(l.command()).containsSequence("-icount",
        "shift=auto,rr=record,rrfile=/run/x/replay,,1.bin");
  }

  @Test
  void aRingNeedsRecordOrReplay() {
    QemuLaunch l = QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x")
        .shim(Path.of("/lib/libftshim.so"), Path.of("/dev/shm/qemuft-ring"));
    assertThatThrownBy(l::command).isInstanceOf(IllegalStateException.class)
        .hasMessageContaining("needs mode RECORD or REPLAY");
  }

  @Test
  void withoutTheShimNothingIsPreloaded() {
    QemuLaunch l = QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x").mode(Mode.REPLAY, Path.of("/r"));
    assertThat(l.environment()).doesNotContainKeys("LD_PRELOAD", "QEMUFT_SHIM_LOG");
  }

  @Test
  void theGuestNicsSocketIsOpenedBeforeQemuRunsAndHandedToItsDgramNetdev() {
    QemuLaunch l = QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x").mode(Mode.RECORD, Path.of("/r"))
        .guestNic(new InetSocketAddress("127.0.0.1", 40123));
    List<String> cmd = l.command();
    assertThat(cmd.subList(0, 2)).containsExactly("/bin/bash", "-c");
    assertThat(cmd.get(2)).startsWith("exec 3<>\"/dev/udp/$1/$2\" ||").endsWith("exec \"$@\"");
    assertThat(cmd.subList(3, 7)).containsExactly("qemuft-guest-nic", "127.0.0.1", "40123", QemuLaunch.qemuBinary());
    assertThat(cmd).containsSequence("-netdev", "dgram,id=net0,local.type=fd,local.str=3")
        .containsSequence("-device", "virtio-net-pci,netdev=net0,tx=timer,mac=52:54:00:12:34:56")
        .containsSequence("-object", "filter-replay,id=net0-replay,netdev=net0");
  }

  @Test
  void withoutAGuestNicQemuRunsDirectly() {
    List<String> cmd = QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x").command();
    assertThat(cmd.getFirst()).isEqualTo(QemuLaunch.qemuBinary());
    assertThat(cmd).noneMatch(a -> a.startsWith("dgram") || a.startsWith("virtio-net"));
  }

  @Test
  void recordAndReplayGetTheSameInputWakeUpTimerOnANetdevThatCarriesNothing() {
    List<String> wake = List.of(
        "-netdev", "hubport,id=qft-wake,hubid=90",
        "-netdev", "hubport,id=qft-wake-end,hubid=91,netdev=qft-wake",
        "-object", "filter-buffer,id=qft-wake-timer,netdev=qft-wake,interval=500");
    VmSpec waking = SPEC.withInputWakeUs(500);
    for (Mode m : Mode.values()) {
      assertThat(QemuLaunch.of(waking, Path.of("/run/x"), "qft-x").mode(m, Path.of("/r")).command())
          .as(m.name()).containsSequence(wake);
    }
    assertThat(QemuLaunch.of(SPEC.withInputWakeUs(2000), Path.of("/run/x"), "qft-x").command())
        .contains("filter-buffer,id=qft-wake-timer,netdev=qft-wake,interval=2000");
    assertThat(SPEC.inputWakeUs()).as("off unless asked for").isZero();
    assertThat(QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x").command()).noneMatch(a -> a.contains("qft-wake"));
    // QEMU's defaults, for comparisons: what qemu-ft ran before it had the wake-up.
    assertThat(QemuLaunch.of(waking, Path.of("/run/x"), "qft-x").timers(QemuLaunch.Timers.QEMU_DEFAULTS).command())
        .noneMatch(a -> a.contains("qft-wake"));
  }

  @Test
  void aWakeUpIntervalOutsideItsRangeIsRefused() {
    assertThatThrownBy(() -> SPEC.withInputWakeUs(10)).isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("inputWakeUs 10 is outside 50..1000000");
  }

  @Test
  void theGuestNicsHostEndMustBeOnLoopback() {
    QemuLaunch l = QemuLaunch.of(SPEC, Path.of("/run/x"), "qft-x");
    assertThatThrownBy(() -> l.guestNic(new InetSocketAddress("10.0.0.1", 40123)))
        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("IPv4 loopback");
    assertThatThrownBy(() -> l.guestNic(new InetSocketAddress("127.0.0.1", 0)))
        .isInstanceOf(IllegalArgumentException.class);
  }
}
