package org.qemuft.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The retry-safe operations on a local directory, and against lost replies and silence. */
class RetryingStorageTest {
  private static final StorageOptions FAST = new StorageOptions(Duration.ofSeconds(2), Duration.ofSeconds(2));

  @TempDir Path dir;

  private static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void createExclusiveCreatesOnceWithItsContentAndLeavesNoTemporaryFiles() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      assertThat(s.createExclusive("a/b/lock", b("first"))).isTrue();
      assertThat(s.createExclusive("a/b/lock", b("second"))).isFalse();
      assertThat(s.read("a/b/lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("first")));
      try (var files = Files.list(dir.resolve("a/b"))) {
        assertThat(files.map(p -> p.getFileName().toString())).containsExactly("lock");
      }
      assertThat(Files.getAttribute(dir.resolve("a/b/lock"), "unix:nlink")).isEqualTo(1);
    }
  }

  @Test
  void writeReplacesWholeAndListHidesTemporaryFiles() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      s.write("x/state", b("one"));
      s.write("x/state", b("two"));
      Files.writeString(dir.resolve("x/.write-leftover-state"), "junk");
      assertThat(s.read("x/state")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("two")));
      assertThat(s.list("x")).containsExactly("state");
      assertThat(s.list("")).containsExactly("x");
      assertThat(s.list("nothing-here")).isEmpty();
      assertThat(s.read("x/none")).isEmpty();
      assertThat(s.exists("x")).isTrue();
      assertThat(s.exists("x/none")).isFalse();
    }
  }

  @Test
  void deleteRemovesFilesAndEmptyDirectoriesOnly() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      s.write("d/f", b("x"));
      assertThatThrownBy(() -> s.delete("d")).isInstanceOf(StorageException.class)
          .hasMessageContaining("not empty").hasMessageContaining("mounted directory " + dir);
      assertThat(s.delete("d/f")).isTrue();
      assertThat(s.delete("d/f")).isFalse();
      assertThat(s.delete("d")).isTrue();
      s.createDirectories("p/q/r");
      assertThat(Files.isDirectory(dir.resolve("p/q/r"))).isTrue();
    }
  }

  @Test
  void badNamesAndLocationsAreRefusedWithTheReason() {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      for (String bad : new String[] {"", "../x", "a//b", ".hidden", "a/-x", "a/b c", "/abs"}) {
        assertThatThrownBy(() -> s.read(bad)).as(bad).isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("storage name");
      }
    }
    assertThatThrownBy(() -> SharedStorage.open("relative/dir", FAST)).hasMessageContaining("absolute");
    assertThatThrownBy(() -> SharedStorage.open(dir.resolve("missing").toString(), FAST))
        .hasMessageContaining("does not exist");
    assertThatThrownBy(() -> SharedStorage.open("smb://h/x", FAST)).hasMessageContaining("nfs://");
    assertThatThrownBy(() -> SharedStorage.open("nfs://h:2049/x", FAST)).hasMessageContaining("port");
    assertThatThrownBy(() -> SharedStorage.open("nfs://h", FAST)).hasMessageContaining("nfs://SERVER/");
  }

  @Test
  void qemuLocationIsAPathOrAnNfsUrl() {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST);
        SharedStorage n = SharedStorage.open("nfs://127.0.0.1//srv/share/", FAST)) {
      assertThat(s.qemuLocation("vms/a.qcow2")).isEqualTo(dir.resolve("vms/a.qcow2").toString());
      assertThat(n.qemuLocation("vms/a.qcow2")).isEqualTo("nfs://127.0.0.1/srv/share/vms/a.qcow2");
      assertThat(n.describe()).isEqualTo("libnfs nfs://127.0.0.1/srv/share");
    }
  }

  @Test
  void aLinkWhoseReplyWasLostIsStillRecognisedAsWon() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    flaky.loseReplyOf = "link";
    flaky.repliesToLose.set(1);
    try (SharedStorage s = new RetryingStorage(flaky, FAST)) {
      assertThat(s.createExclusive("lock", b("mine"))).isTrue();
      assertThat(s.read("lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("mine")));
    }
  }

  @Test
  void aLinkWhoseReplyWasLostAfterSomeoneElseWonIsStillALoss() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    try (SharedStorage other = SharedStorage.open(dir.toString(), FAST);
        SharedStorage s = new RetryingStorage(flaky, FAST)) {
      assertThat(other.createExclusive("lock", b("theirs"))).isTrue();
      flaky.loseReplyOf = "link";
      flaky.repliesToLose.set(3);
      assertThat(s.createExclusive("lock", b("mine"))).isFalse();
      assertThat(s.read("lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("theirs")));
    }
  }

  @Test
  void lostRepliesOfCreateAndRenameDoNotBreakWrites() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    try (SharedStorage s = new RetryingStorage(flaky, FAST)) {
      flaky.loseReplyOf = "create";
      flaky.repliesToLose.set(2);
      s.write("w", b("v1"));
      flaky.loseReplyOf = "rename";
      flaky.repliesToLose.set(1);
      s.write("w", b("v2"));
      assertThat(s.read("w")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("v2")));
      try (var files = Files.list(dir)) {
        assertThat(files.map(p -> p.getFileName().toString())).containsExactly("w");
      }
    }
  }

  @Test
  void silentStorageFailsAfterTheWaitLimitAndNeverPretends() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    flaky.silent = true;
    StorageOptions opts = new StorageOptions(Duration.ofSeconds(1), Duration.ofMillis(700));
    try (SharedStorage s = new RetryingStorage(flaky, opts)) {
      long t0 = System.nanoTime();
      assertThatThrownBy(() -> s.createExclusive("lock", b("x")))
          .isInstanceOf(StorageUnavailableException.class)
          .hasMessageContaining("got no answer").hasMessageContaining("create lock");
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(700));
      assertThat(flaky.calls.get()).isGreaterThan(2);
    }
    assertThat(Files.exists(dir.resolve("lock"))).isFalse();
  }
}
