package org.qemuft.controller.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.qemuft.controller.config.FtConfig.Role;
import org.qemuft.controller.vm.VmSpec;

class FtConfigTest {
  @TempDir Path dir;

  private static final String GOOD = """
      pair:
        id: web1
        secretFile: web1.secret
        primary: {channel: "10.0.0.1:7700"}
        backup: {channel: "10.0.0.2:7700"}
      vm:
        kernel: vmlinuz
        initrd: initrd.img
        kernelArgs: "qemuft.ip=10.0.0.10/24"
        mac: "52:54:00:12:34:56"
        disks: [disk.qcow2, "nfs://nas/export/web1.qcow2"]
      uplink: {tap: qfttap0}
      runtime: {dir: run}
      flowControl: {maxLagBytes: 8MiB, maxLagMs: 250, ringBytes: 4MiB}
      channel: {heartbeatInterval: 20ms, peerTimeout: 1s}
      """;

  @BeforeEach
  void files() throws Exception {
    Files.writeString(dir.resolve("vmlinuz"), "k");
    Files.writeString(dir.resolve("initrd.img"), "i");
  }

  private FtConfig load(String yaml) throws ConfigException {
    Path f = dir.resolve("pair.yaml");
    try {
      Files.writeString(f, yaml);
    } catch (java.io.IOException e) {
      throw new AssertionError(e);
    }
    return FtConfig.load(f);
  }

  @Test
  void aGoodFileLoadsWithDefaultsAndPathsRelativeToTheFile() throws Exception {
    FtConfig c = load(GOOD);
    assertThat(c.pair().id()).isEqualTo("web1");
    assertThat(c.pair().epoch()).isEqualTo(1);
    assertThat(c.pair().secretFile()).isEqualTo(dir.resolve("web1.secret"));
    assertThat(FtConfig.hostPort(c.pair().channel(Role.BACKUP))).isEqualTo("10.0.0.2:7700");
    assertThat(c.vm().memoryMiB()).isEqualTo(256);
    assertThat(c.vm().icount()).isEqualTo(FtConfig.DEFAULT_ICOUNT);
    assertThat(c.vm().inputWakeUs()).isEqualTo(VmSpec.DEFAULT_INPUT_WAKE_US);
    assertThat(c.vm().disks()).extracting(d -> d.location())
        .containsExactly(dir.resolve("disk.qcow2").toString(), "nfs://nas/export/web1.qcow2");
    assertThat(c.flowControl().maxLagBytes()).isEqualTo(8L << 20);
    assertThat(c.flowControl().maxLag()).isEqualTo(Duration.ofMillis(250));
    assertThat(c.flowControl().backupBufferBytes()).isEqualTo(64L << 20);
    assertThat(c.channel().peerTimeout()).isEqualTo(Duration.ofSeconds(1));
    assertThat(c.channel().compression()).isTrue();
    assertThat(c.controlSocket(Role.PRIMARY)).isEqualTo(dir.resolve("run/web1/primary/control.sock"));
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', textBlock = """
      unknown key with hint   | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34:56\"\n  memry: 512'  | vm.memry: unknown setting (did you mean 'memoryMiB'?)
      missing required field  | '  id: web1\n'                | ''                                        | pair.id: missing (required)
      bad id                  | 'id: web1'                    | 'id: \"web 1\"'                           | pair.id: 'web 1' is not 1-64 of
      memory out of range     | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34:56\"\n  memoryMiB: 12' | vm.memoryMiB: 12 is outside the allowed range 64..
      memory not a number     | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34:56\"\n  memoryMiB: lots' | vm.memoryMiB: must be a whole number, not 'lots'
      bad mac                 | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34\"'                 | vm.mac: '52:54:00:12:34' is not a MAC address
      multicast mac           | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"53:54:00:12:34:56\"'              | vm.mac: 53:54:00:12:34:56 is a multicast address
      rr in icount            | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34:56\"\n  icount: \"shift=5,rr=record\"' | vm.icount: icount 'shift=5,rr=record' must not contain rr
      wake below minimum      | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34:56\"\n  inputWakeUs: 10' | vm.inputWakeUs: inputWakeUs 10 is outside 50..1000000 (0 turns the wake-ups off)
      wake negative           | 'mac: \"52:54:00:12:34:56\"'  | 'mac: \"52:54:00:12:34:56\"\n  inputWakeUs: -1' | vm.inputWakeUs: -1 is outside the allowed range 0..
      missing kernel file     | 'kernel: vmlinuz'             | 'kernel: nope'                            | vm.kernel: 
      bad address             | '{channel: \"10.0.0.2:7700\"}' | '{channel: \"10.0.0.2\"}'                 | pair.backup.channel: '10.0.0.2' is not HOST:PORT
      same addresses          | '{channel: \"10.0.0.2:7700\"}' | '{channel: \"10.0.0.1:7700\"}'            | pair.backup.channel: is the same address
      ring not power of two   | 'ringBytes: 4MiB'             | 'ringBytes: 3MiB'                         | flowControl.ringBytes: 3145728 is not a power of two
      bad size                | 'ringBytes: 4MiB'             | 'ringBytes: 4 parsecs'                    | flowControl.ringBytes: must be a size such as
      lag above buffer        | 'maxLagBytes: 8MiB'           | 'maxLagBytes: 128MiB'                     | flowControl.maxLagBytes: 134217728 bytes exceeds backupBufferBytes
      bad duration            | 'maxLagMs: 250'               | 'maxLagMs: soon'                          | flowControl.maxLagMs: must be a duration
      timeout below 3 beats   | 'peerTimeout: 1s'             | 'peerTimeout: 40ms'                       | channel.peerTimeout: 40 ms is less than three heartbeat intervals
      bad compression         | '{heartbeatInterval: 20ms, peerTimeout: 1s}' | '{heartbeatInterval: 20ms, peerTimeout: 1s, compression: lz77}' | channel.compression: 'lz77' is not zstd or none
      bad tap name            | 'tap: qfttap0'                | 'tap: a-very-long-interface-name' | uplink.tap: 'a-very-long-interface-name' is not a network interface name
      section not a mapping   | 'uplink: {tap: qfttap0}'      | 'uplink: qfttap0'                         | uplink: must be a mapping of settings
      unknown section         | 'uplink: {tap: qfttap0}'      | 'uplink: {tap: qfttap0}\nuplinks: {}'     | uplinks: unknown setting (did you mean 'uplink'?)
      """)
  void badFilesAreRefusedNamingFieldAndReason(String what, String from, String to, String message) {
    String yaml = GOOD.replace(from.replace("\\n", "\n"), to.replace("\\n", "\n"));
    assertThat(yaml).as("the test's replacement applies").isNotEqualTo(GOOD);
    assertThatThrownBy(() -> load(yaml))
        .isInstanceOf(ConfigException.class)
        .hasMessageStartingWith(dir.resolve("pair.yaml") + ": ")
        .hasMessageContaining(message);
  }

  @Test
  void notYamlAndMissingFilesAreRefused() {
    assertThatThrownBy(() -> FtConfig.load(dir.resolve("absent.yaml")))
        .hasMessage(dir.resolve("absent.yaml") + ": no such file");
    assertThatThrownBy(() -> load("pair: [unclosed"))
        .hasMessageContaining("not readable as YAML");
    assertThatThrownBy(() -> load(""))
        .hasMessageContaining("the file is empty");
  }
}
