package org.qemuft.it.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.qemuft.it.support.NfsServer;
import org.qemuft.nativeio.nfs.NfsClient;
import org.qemuft.nativeio.nfs.NfsException;
import org.qemuft.nativeio.nfs.NfsStat;
import org.qemuft.storage.Claimant;
import org.qemuft.storage.GoLiveLock;
import org.qemuft.storage.SharedStorage;
import org.qemuft.storage.StorageOptions;

/**
 * {@link NfsClient#createExclusive} against a real nfs-ganesha: the CREATE really goes out in mode
 * EXCLUSIVE with the verifier where the server reads it. The semantics tell the three modes
 * apart: the same verifier a second time succeeds (GUARDED would say EEXIST), another verifier
 * gets EEXIST (UNCHECKED would succeed), and the server keeps exactly our 8 bytes in the file's
 * atime and mtime (what ganesha 4.3's FSAL VFS does with a verifier; a wrong layout of
 * CREATE3args would put other bytes there or be refused). This also checks the private
 * {@code struct nfs_fh} layout, which a C probe cannot see: a wrong one sends a garbage
 * directory handle.
 */
class NfsExclusiveCreateIT {
  @RegisterExtension static final NfsServer NFS = new NfsServer();

  private static final byte[] VERIFIER = {0x11, 0x22, 0x33, 0x04, 0x55, 0x66, 0x77, 0x08};

  private static NfsClient client() throws NfsException {
    return NfsClient.mount("127.0.0.1", NFS.exportDir().toString(), Duration.ofSeconds(5));
  }

  @Test
  void theSameVerifierSucceedsAgainAndAnyOtherGetsEexist() throws Exception {
    try (NfsClient c = client(); NfsClient other = client()) {
      c.mkdir("x", 0755);
      c.createExclusive("x/lock", VERIFIER);
      // What a retransmission after a lost reply gets: success, from this or any connection.
      c.createExclusive("x/lock", VERIFIER);
      other.createExclusive("x/lock", VERIFIER);
      byte[] another = VERIFIER.clone();
      another[0] ^= 1;
      NfsException e = assertThrows(NfsException.class, () -> other.createExclusive("x/lock", another));
      assertThat(e.errno()).isEqualTo(NfsException.EEXIST);
      assertThat(e.serverAnswered()).isTrue();
      assertThat(e.getMessage()).contains("create exclusive x/lock on " + NFS.url())
          .contains("CREATE EXCLUSIVE").contains("NFS3ERR_EXIST");

      // The server keeps the verifier in the empty file's times: atime = bytes 0-3, mtime = bytes
      // 4-7, each read as a little-endian number (ganesha's set_common_verifier).
      NfsStat st = c.stat("x/lock");
      assertThat(st.isRegularFile()).isTrue();
      assertThat(st.size()).isZero();
      assertThat(st.atimeSeconds()).isEqualTo(0x04332211L);
      assertThat(st.mtimeSeconds()).isEqualTo(0x08776655L);
      Path onServer = NFS.exportDir().resolve("x/lock");
      assertThat(((FileTime) Files.getAttribute(onServer, "lastAccessTime", LinkOption.NOFOLLOW_LINKS)).toMillis())
          .isEqualTo(0x04332211L * 1000);
      assertThat(Files.getLastModifiedTime(onServer, LinkOption.NOFOLLOW_LINKS).toMillis()).isEqualTo(0x08776655L * 1000);

      // Reading the empty file does not touch its atime: no READ is sent for an empty file.
      assertThat(c.readFile("x/lock", 100)).isEmpty();
      assertThat(c.stat("x/lock").atimeSeconds()).isEqualTo(0x04332211L);

      // Writing into it ends the verifier's life: now the same verifier gets EEXIST too.
      byte[] record = "{\"claim\":\"mine\"}\n".getBytes(StandardCharsets.UTF_8);
      c.writeInto("x/lock", record, 0644);
      assertThat(c.readFile("x/lock", 100)).isEqualTo(record);
      assertThat(c.stat("x/lock").mode() & 07777).isEqualTo(0644);
      NfsException afterWrite = assertThrows(NfsException.class, () -> c.createExclusive("x/lock", VERIFIER));
      assertThat(afterWrite.errno()).isEqualTo(NfsException.EEXIST);
    }
  }

  @Test
  void libnfsOwnExclusiveCreateIsGuardedForContrast() throws Exception {
    try (NfsClient c = client()) {
      c.createFile("guarded", new byte[] {1}, 0644);
      // GUARDED: the creator's own repeat is EEXIST; this is why the lock does not use it.
      NfsException e = assertThrows(NfsException.class, () -> c.createFile("guarded", new byte[] {1}, 0644));
      assertThat(e.errno()).isEqualTo(NfsException.EEXIST);
      // An exclusive create of a name made by a GUARDED create is EEXIST as well: no verifier matches.
      NfsException x = assertThrows(NfsException.class, () -> c.createExclusive("guarded", VERIFIER));
      assertThat(x.errno()).isEqualTo(NfsException.EEXIST);
    }
  }

  @Test
  void aMissingDirectoryIsEnoentAndATopLevelNameWorks() throws Exception {
    try (NfsClient c = client()) {
      NfsException e = assertThrows(NfsException.class, () -> c.createExclusive("no/such/dir/lock", VERIFIER));
      assertThat(e.errno()).isEqualTo(NfsException.ENOENT);
      assertThat(e.serverAnswered()).isTrue();
      c.createExclusive("top", VERIFIER);
      assertThat(c.stat("top").size()).isZero();
      assertThat(Files.exists(NFS.exportDir().resolve("top"))).isTrue();
    }
  }

  /**
   * A winner that died between its exclusive create and its record: the server holds an empty
   * lock file with the winner's verifier, which is exactly what that winner's first RPC leaves
   * (made here by sending that RPC and nothing else; a claim's verifier is the first 8 bytes of
   * its claim id). Every other claimant loses, after waiting for the record, and names the claim.
   */
  @Test
  void aWinnerThatDiedBetweenCreateAndRecordStillHoldsTheLock() throws Exception {
    String deadClaim = "0123453789abcd0f" + "00112233445566778899aabbccddeeff".substring(16);
    byte[] deadVerifier = java.util.HexFormat.of().parseHex(deadClaim.substring(0, 16));
    try (NfsClient c = client()) {
      c.mkdir("golive", 0755);
      c.mkdir("golive/dead", 0755);
      c.createExclusive("golive/dead/4.lock", deadVerifier);
    }
    Duration wait = Duration.ofSeconds(2);
    try (SharedStorage s = SharedStorage.open(NFS.url(), StorageOptions.DEFAULT)) {
      GoLiveLock lock = new GoLiveLock(s, wait);
      long t0 = System.nanoTime();
      GoLiveLock.Outcome o = lock.tryAcquire("dead", 4, new Claimant("host-b", 2, "primary"));
      assertThat(Duration.ofNanos(System.nanoTime() - t0)).isGreaterThanOrEqualTo(wait);
      assertThat(o.won()).isFalse();
      assertThat(o.winner().written()).isFalse();
      assertThat(o.winner().claimId()).isEqualTo(deadClaim.substring(0, 16));
      assertThat(o.winner().summary()).contains("taken by claim 0123453789abcd0f, record not written");
      assertThat(lock.read("dead", 4)).contains(o.winner());
      GoLiveLock.Outcome again = new GoLiveLock(s, wait).tryAcquire("dead", 4, new Claimant("host-c", 3, "backup"));
      assertThat(again.won()).isFalse();
      assertThat(again.winner()).isEqualTo(o.winner());
    }
    // Nobody READ the empty file: its times still hold the dead winner's verifier.
    assertThat(Files.size(NFS.exportDir().resolve("golive/dead/4.lock"))).isZero();
    assertThat(Files.getLastModifiedTime(NFS.exportDir().resolve("golive/dead/4.lock")).toMillis())
        .isEqualTo(0x0fcdab89L * 1000);
  }
}
