package org.qemuft.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GoLiveLockTest {
  private static final StorageOptions FAST = new StorageOptions(Duration.ofSeconds(2), Duration.ofSeconds(1));

  @TempDir Path dir;

  @Test
  void oneWinnerPerPairAndEpochAndTheLoserLearnsWho() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      GoLiveLock lock = new GoLiveLock(s);
      Claimant a = new Claimant("host-a", 11, "backup");
      Claimant b = new Claimant("host-b", 22, "primary");
      assertThat(lock.read("pair1", 7)).isEmpty();
      GoLiveLock.Outcome first = lock.tryAcquire("pair1", 7, a);
      GoLiveLock.Outcome second = new GoLiveLock(s).tryAcquire("pair1", 7, b);
      assertThat(first.won()).isTrue();
      assertThat(second.won()).isFalse();
      assertThat(second.winner()).isEqualTo(first.winner());
      assertThat(first.winner().host()).isEqualTo("host-a");
      assertThat(first.winner().pid()).isEqualTo(11);
      assertThat(lock.read("pair1", 7)).contains(first.winner());
      // The same claimant asking again is told it won (its earlier answer may have been lost).
      assertThat(lock.tryAcquire("pair1", 7, a).won()).isTrue();
      // Other epochs and pairs are independent.
      assertThat(new GoLiveLock(s).tryAcquire("pair1", 8, b).won()).isTrue();
      assertThat(new GoLiveLock(s).tryAcquire("pair2", 7, b).won()).isTrue();
      assertThat(lock.epochs("pair1")).containsExactly(7L, 8L);
      assertThat(Files.readString(dir.resolve("golive/pair1/7.lock"))).contains("\"host\":\"host-a\"");
      assertThat(lock.pruneBefore("pair1", 8)).isEqualTo(1);
      assertThat(lock.epochs("pair1")).containsExactly(8L);
    }
  }

  @Test
  void aWinWhoseAnswerWasLostIsRecognisedByTheNextCall() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    try (SharedStorage s = new RetryingStorage(flaky, FAST)) {
      GoLiveLock lock = new GoLiveLock(s);
      Claimant me = new Claimant("h", 1, "backup");
      flaky.loseReplyOf = "link";
      flaky.repliesToLose.set(1);
      flaky.silentAfterLoss = true; // the link is done, then the server goes away
      assertThatThrownBy(() -> lock.tryAcquire("p", 3, me)).isInstanceOf(StorageUnavailableException.class);
      assertThat(Files.exists(dir.resolve("golive/p/3.lock"))).isTrue(); // it did take effect
      flaky.silentAfterLoss = false;
      flaky.silent = false;
      GoLiveLock.Outcome again = lock.tryAcquire("p", 3, me);
      assertThat(again.won()).isTrue();
      assertThat(new GoLiveLock(s).tryAcquire("p", 3, new Claimant("h", 2, "primary")).won()).isFalse();
    }
  }

  @Test
  void aDamagedLockIsAnErrorNeverAFreeLock() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      Files.createDirectories(dir.resolve("golive/p"));
      Files.writeString(dir.resolve("golive/p/1.lock"), "");
      GoLiveLock lock = new GoLiveLock(s);
      assertThatThrownBy(() -> lock.tryAcquire("p", 1, new Claimant("h", 1, "backup")))
          .isInstanceOf(StorageException.class).hasMessageContaining("do not run alone");
      assertThatThrownBy(() -> lock.read("p", 1)).hasMessageContaining("not a readable go-live record");
    }
  }

  @Test
  void badPairIdsAndEpochsAreRefused() {
    assertThatThrownBy(() -> GoLiveLock.lockName("a/b", 1)).hasMessageContaining("pair id");
    assertThatThrownBy(() -> GoLiveLock.lockName("ok", -1)).hasMessageContaining("epoch");
    assertThat(GoLiveLock.lockName("vm-1", 42)).isEqualTo("golive/vm-1/42.lock");
  }
}
