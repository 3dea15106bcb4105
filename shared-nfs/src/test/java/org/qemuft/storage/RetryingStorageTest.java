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

  /** Two verifiers as GoLiveLock makes them (bytes 3 and 7 below 0x40). */
  static final byte[] V1 = {1, 2, 3, 4, 5, 6, 7, 8};
  static final byte[] V2 = {9, 10, 11, 12, 13, 14, 15, 16};

  private static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void createExclusiveCreatesOnceWithItsContentAndLeavesNothingElse() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      assertThat(s.createExclusive("a/b/lock", V1, b("first"))).isTrue();
      assertThat(s.createExclusive("a/b/lock", V2, b("second"))).isFalse();
      // Once written, the file no longer holds the verifier: its own repeat is told "exists" too.
      assertThat(s.createExclusive("a/b/lock", V1, b("first"))).isFalse();
      assertThat(s.read("a/b/lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("first")));
      try (var files = Files.list(dir.resolve("a/b"))) {
        assertThat(files.map(p -> p.getFileName().toString())).containsExactly("lock");
      }
      assertThat(s.createVerifier("a/b/lock")).isEmpty();
      assertThat(s.createVerifier("a/b/none")).isEmpty();
    }
  }

  @Test
  void anEmptyExclusiveFileShowsItsVerifierAndTheSameVerifierMayFinishIt() throws Exception {
    DirectoryBackend backend = new DirectoryBackend(dir, Duration.ofSeconds(2));
    try (SharedStorage s = new RetryingStorage(backend, FAST)) {
      backend.createExclusive("lock", V1); // a claimant that stopped right after its create
      assertThat(s.read("lock")).hasValueSatisfying(v -> assertThat(v).isEmpty());
      assertThat(s.createVerifier("lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(V1));
      // Stamped the way nfs-ganesha stores a verifier: atime = bytes 0-3, mtime = bytes 4-7, little-endian.
      assertThat(Files.getLastModifiedTime(dir.resolve("lock")).toMillis()).isEqualTo(0x08070605L * 1000);
      assertThat(s.createExclusive("lock", V2, b("theirs"))).isFalse();
      assertThat(s.createExclusive("lock", V1, b("mine"))).isTrue();
      assertThat(s.read("lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("mine")));
      assertThat(s.createVerifier("lock")).isEmpty();
    }
  }

  @Test
  void verifiersThatServersCannotStoreIntactAreRefused() {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      assertThatThrownBy(() -> s.createExclusive("x", new byte[7], b("x")))
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("8 bytes");
      byte[] high = V1.clone();
      high[3] = 0x40;
      assertThatThrownBy(() -> s.createExclusive("x", high, b("x")))
          .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("2^30");
    }
    assertThat(Files.exists(dir.resolve("x"))).isFalse();
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
  void aCreateWhoseReplyWasLostIsStillRecognisedAsCreated() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    flaky.loseReplyOf = "createExclusive";
    flaky.repliesToLose.set(1);
    try (SharedStorage s = new RetryingStorage(flaky, FAST)) {
      assertThat(s.createExclusive("lock", V1, b("mine"))).isTrue();
      assertThat(s.read("lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("mine")));
    }
  }

  @Test
  void aWriteWhoseReplyWasLostIsRepeatedNotRecreated() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    flaky.loseReplyOf = "writeInto";
    flaky.repliesToLose.set(2);
    try (SharedStorage s = new RetryingStorage(flaky, FAST)) {
      assertThat(s.createExclusive("lock", V1, b("mine"))).isTrue();
      assertThat(s.read("lock")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("mine")));
    }
  }

  @Test
  void aCreateWhoseReplyWasLostAfterSomeoneElseWonIsStillALoss() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    try (SharedStorage other = SharedStorage.open(dir.toString(), FAST);
        SharedStorage s = new RetryingStorage(flaky, FAST)) {
      assertThat(other.createExclusive("lock", V2, b("theirs"))).isTrue();
      flaky.loseReplyOf = "createExclusive";
      flaky.repliesToLose.set(3);
      assertThat(s.createExclusive("lock", V1, b("mine"))).isFalse();
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
      assertThatThrownBy(() -> s.createExclusive("lock", V1, b("x")))
          .isInstanceOf(StorageUnavailableException.class)
          .hasMessageContaining("got no answer").hasMessageContaining("create exclusive lock");
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(700));
      assertThat(flaky.calls.get()).isGreaterThan(2);
    }
    assertThat(Files.exists(dir.resolve("lock"))).isFalse();
  }
}
