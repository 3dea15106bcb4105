package org.qemuft.it.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.qemuft.it.support.NfsServer;
import org.qemuft.nativeio.nfs.NfsClient;
import org.qemuft.nativeio.nfs.NfsException;
import org.qemuft.storage.SharedStorage;
import org.qemuft.storage.StorageException;
import org.qemuft.storage.StorageOptions;

/** Every SharedStorage operation over real NFS (libnfs backend), and libnfs's answers as errors. */
class SharedStorageNfsIT {
  @RegisterExtension static final NfsServer NFS = new NfsServer();

  private static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void operationsOverNfsAreSeenOnTheServer() throws Exception {
    try (SharedStorage s = SharedStorage.open(NFS.url(), StorageOptions.DEFAULT)) {
      s.write("cfg/state.json", b("{\"v\":1}"));
      s.write("cfg/state.json", b("{\"v\":2}"));
      assertThat(Files.readString(NFS.exportDir().resolve("cfg/state.json"))).isEqualTo("{\"v\":2}");
      assertThat(s.read("cfg/state.json")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("{\"v\":2}")));
      byte[] v1 = {1, 2, 3, 4, 5, 6, 7, 8};
      byte[] v2 = {8, 7, 6, 5, 4, 3, 2, 1};
      assertThat(s.createExclusive("cfg/once", v1, b("a"))).isTrue();
      assertThat(s.createExclusive("cfg/once", v2, b("b"))).isFalse();
      assertThat(s.read("cfg/once")).hasValueSatisfying(v -> assertThat(v).isEqualTo(b("a")));
      assertThat(s.list("cfg")).containsExactly("once", "state.json");
      try (var files = Files.list(NFS.exportDir().resolve("cfg"))) {
        assertThat(files.map(p -> p.getFileName().toString()).sorted()).containsExactly("once", "state.json");
      }
      byte[] big = new byte[300_000];
      java.util.Arrays.fill(big, (byte) 7);
      s.write("cfg/big", big);
      assertThat(s.read("cfg/big")).hasValueSatisfying(v -> assertThat(v).isEqualTo(big));
      assertThat(s.delete("cfg/big")).isTrue();
      assertThatThrownBy(() -> s.delete("cfg")).isInstanceOf(StorageException.class)
          .hasMessageContaining("not empty");
      s.createDirectories("a/b/c");
      assertThat(s.exists("a/b/c")).isTrue();
      assertThat(s.delete("a/b/c")).isTrue();
      assertThat(s.exists("a/b/c")).isFalse();
      assertThat(s.read("nothing")).isEmpty();
      assertThat(s.list("nowhere")).isEmpty();
    }
  }

  @Test
  void aLocationThatIsNotExportedIsRefusedWithTheServersAnswer() {
    try (SharedStorage s = SharedStorage.open("nfs://127.0.0.1/not/exported", StorageOptions.DEFAULT)) {
      assertThatThrownBy(() -> s.read("x"))
          .isInstanceOf(StorageException.class)
          .hasMessageContaining("libnfs nfs://127.0.0.1/not/exported")
          .hasMessageContaining("EACCES")
          .hasMessageContaining("MNT3ERR_ACCES")
          .hasMessageContaining("exported to this host");
    }
  }

  @Test
  void libnfsErrorsNameTheExportPathAndNfsStatus() throws Exception {
    try (NfsClient c = NfsClient.mount("127.0.0.1", NFS.exportDir().toString(), Duration.ofSeconds(5))) {
      c.createFile("f", b("x"), 0644);
      NfsException e = org.junit.jupiter.api.Assertions.assertThrows(NfsException.class,
          () -> c.createFile("f", b("y"), 0644));
      assertThat(e.errno()).isEqualTo(NfsException.EEXIST);
      assertThat(e.serverAnswered()).isTrue();
      assertThat(e.getMessage()).contains("create f on " + NFS.url()).contains("NFS3ERR_EXIST");
      NfsException missing = org.junit.jupiter.api.Assertions.assertThrows(NfsException.class,
          () -> c.stat("no/such"));
      assertThat(missing.errnoName()).isEqualTo("ENOENT");
      assertThat(c.stat("f").links()).isEqualTo(1);
      c.link("f", "g");
      assertThat(c.stat("g").fileId()).isEqualTo(c.stat("f").fileId());
      assertThat(c.stat("f").links()).isEqualTo(2);
      assertThat(new String(c.readFile("g", 10), StandardCharsets.UTF_8)).isEqualTo("x");
      NfsException tooBig = org.junit.jupiter.api.Assertions.assertThrows(NfsException.class,
          () -> c.readFile("g", 0));
      assertThat(tooBig.errnoName()).isEqualTo("EFBIG");
    }
  }
}
