package org.qemuft.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GoLiveLockTest {
  private static final StorageOptions FAST = new StorageOptions(Duration.ofSeconds(2), Duration.ofSeconds(1));
  private static final Duration SHORT_WAIT = Duration.ofMillis(300);

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
      assertThat(first.winner().written()).isTrue();
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
      flaky.loseReplyOf = "writeInto";
      flaky.repliesToLose.set(1);
      flaky.silentAfterLoss = true; // the record is written, then the server goes away
      assertThatThrownBy(() -> lock.tryAcquire("p", 3, me)).isInstanceOf(StorageUnavailableException.class);
      assertThat(Files.readString(dir.resolve("golive/p/3.lock"))).contains("\"role\":\"backup\""); // it did take effect
      flaky.silentAfterLoss = false;
      flaky.silent = false;
      GoLiveLock.Outcome again = lock.tryAcquire("p", 3, me);
      assertThat(again.won()).isTrue();
      assertThat(new GoLiveLock(s).tryAcquire("p", 3, new Claimant("h", 2, "primary")).won()).isFalse();
    }
  }

  @Test
  void aWinnerThatStopsBetweenCreateAndRecordHoldsTheLockAndLosersSayWhichClaim() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    try (SharedStorage winnerStorage = new RetryingStorage(flaky, FAST);
        SharedStorage loserStorage = SharedStorage.open(dir.toString(), FAST)) {
      GoLiveLock winnerLock = new GoLiveLock(winnerStorage);
      Claimant winner = new Claimant("host-a", 1, "backup");
      flaky.loseReplyOf = "createExclusive";
      flaky.repliesToLose.set(1);
      flaky.silentAfterLoss = true; // the create is done, then the winner loses the storage for good
      assertThatThrownBy(() -> winnerLock.tryAcquire("p", 5, winner)).isInstanceOf(StorageUnavailableException.class);
      assertThat(Files.size(dir.resolve("golive/p/5.lock"))).isZero();

      GoLiveLock loserLock = new GoLiveLock(loserStorage, SHORT_WAIT);
      long t0 = System.nanoTime();
      GoLiveLock.Outcome lost = loserLock.tryAcquire("p", 5, new Claimant("host-b", 2, "primary"));
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(SHORT_WAIT);
      assertThat(lost.won()).isFalse();
      assertThat(lost.winner().written()).isFalse();
      assertThat(lost.winner().claimId()).matches("[0-9a-f]{16}");
      assertThat(lost.winner().summary()).contains("taken by claim " + lost.winner().claimId())
          .contains("record not written");
      assertThat(loserLock.read("p", 5)).contains(lost.winner());
      // The loser did not read the empty file: the verifier is still there.
      assertThat(loserStorage.createVerifier("golive/p/5.lock")).isPresent();

      // The winner comes back and calls again: same claim, its create is repeated and it wins.
      flaky.silentAfterLoss = false;
      flaky.silent = false;
      GoLiveLock.Outcome won = winnerLock.tryAcquire("p", 5, winner);
      assertThat(won.won()).isTrue();
      assertThat(won.winner().claimId()).startsWith(lost.winner().claimId());
      GoLiveLock.Outcome lostAgain = loserLock.tryAcquire("p", 5, new Claimant("host-b", 2, "primary"));
      assertThat(lostAgain.won()).isFalse();
      assertThat(lostAgain.winner()).isEqualTo(won.winner());
    }
  }

  @Test
  void aLoserWaitsForTheWinnersRecord() throws Exception {
    DirectoryBackend backend = new DirectoryBackend(dir, Duration.ofSeconds(2));
    try (SharedStorage s = new RetryingStorage(backend, FAST)) {
      String claim = GoLiveLock.newClaimId();
      GoLiveRecord record = new GoLiveRecord("w", 1, "host-a", 1, "backup", java.time.Instant.now(), claim);
      Files.createDirectories(dir.resolve("golive/w"));
      backend.createExclusive("golive/w/1.lock", GoLiveLock.verifierOf(claim)); // won, record not yet written
      CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
        try {
          Thread.sleep(400);
          backend.writeInto("golive/w/1.lock", GoLiveLock.encode(record));
        } catch (Exception e) {
          throw new IllegalStateException(e);
        }
      });
      long t0 = System.nanoTime();
      GoLiveLock.Outcome o = new GoLiveLock(s, Duration.ofSeconds(30)).tryAcquire("w", 1, new Claimant("host-b", 2, "primary"));
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(Duration.ofMillis(350));
      assertThat(o.won()).isFalse();
      assertThat(o.winner()).isEqualTo(record);
      writer.get(10, TimeUnit.SECONDS);
    }
  }

  @Test
  void aRepeatedCreateAnsweredExistsWhileTheFileHoldsOurVerifierStillWins() throws Exception {
    FlakyBackend flaky = new FlakyBackend(new DirectoryBackend(dir, Duration.ofSeconds(2)));
    try (SharedStorage s = new RetryingStorage(flaky, FAST)) {
      flaky.createsAnsweredExists.set(1); // done on the server, answered EXISTS (ganesha's lookup race)
      GoLiveLock.Outcome o = new GoLiveLock(s, SHORT_WAIT).tryAcquire("r", 1, new Claimant("h", 1, "backup"));
      assertThat(o.won()).isTrue();
      assertThat(o.winner().written()).isTrue();
      assertThat(Files.readString(dir.resolve("golive/r/1.lock"))).contains(o.winner().claimId());
    }
  }

  @Test
  void aDamagedLockIsAnErrorNeverAFreeLock() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      Files.createDirectories(dir.resolve("golive/p"));
      Files.writeString(dir.resolve("golive/p/1.lock"), "not json");
      GoLiveLock lock = new GoLiveLock(s, SHORT_WAIT);
      assertThatThrownBy(() -> lock.tryAcquire("p", 1, new Claimant("h", 1, "backup")))
          .isInstanceOf(StorageException.class).hasMessageContaining("do not run alone");
      assertThatThrownBy(() -> lock.read("p", 1)).hasMessageContaining("not a readable go-live record");
    }
  }

  @Test
  void anEmptyLockFileWithoutAVerifierIsTakenByAnUnknownClaim() throws Exception {
    try (SharedStorage s = SharedStorage.open(dir.toString(), FAST)) {
      Files.createDirectories(dir.resolve("golive/p"));
      Files.writeString(dir.resolve("golive/p/2.lock"), ""); // e.g. made by hand: real times, no verifier
      GoLiveLock lock = new GoLiveLock(s, SHORT_WAIT);
      GoLiveLock.Outcome o = lock.tryAcquire("p", 2, new Claimant("h", 1, "backup"));
      assertThat(o.won()).isFalse();
      assertThat(o.winner().written()).isFalse();
      assertThat(o.winner().claimId()).isEqualTo("unknown");
      assertThat(lock.read("p", 2)).contains(o.winner());
    }
  }

  @Test
  void claimIdsAlwaysGiveVerifiersServersStoreIntact() {
    for (int i = 0; i < 10_000; i++) {
      String id = GoLiveLock.newClaimId();
      assertThat(id).matches("[0-9a-f]{32}");
      byte[] v = Verifiers.check(GoLiveLock.verifierOf(id));
      assertThat(Verifiers.fromTimes(Verifiers.atimeSeconds(v), Verifiers.mtimeSeconds(v))).hasValueSatisfying(
          back -> assertThat(back).isEqualTo(v));
      byte[] swapped = new byte[8];
      System.arraycopy(v, 4, swapped, 0, 4);
      System.arraycopy(v, 0, swapped, 4, 4);
      assertThat(Verifiers.same(swapped, v)).isTrue(); // as the Linux server keeps it
    }
    assertThat(Verifiers.fromTimes(1_765_000_000L, 1_765_000_000L)).as("real times of today").isEmpty();
  }

  @Test
  void badPairIdsAndEpochsAreRefused() {
    assertThatThrownBy(() -> GoLiveLock.lockName("a/b", 1)).hasMessageContaining("pair id");
    assertThatThrownBy(() -> GoLiveLock.lockName("ok", -1)).hasMessageContaining("epoch");
    assertThat(GoLiveLock.lockName("vm-1", 42)).isEqualTo("golive/vm-1/42.lock");
  }
}
