package org.qemuft.it.support;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import org.qemuft.qmp.QemuMonitor;
import org.qemuft.qmp.QmpErrorException;

/** VM snapshots for the tests: a qcow2 store (QemuLaunch.snapshotStore) and HMP savevm. */
public final class Snapshots {
  private static final Duration QMP = Duration.ofSeconds(60);

  private Snapshots() {}

  /** Creates an empty 1 GiB qcow2 file to hold snapshots. */
  public static Path store(Path file) throws Exception {
    Process img = new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", file.toString(), "1G")
        .redirectErrorStream(true).start();
    assertThat(img.waitFor()).as(new String(img.getInputStream().readAllBytes())).isZero();
    return file;
  }

  /**
   * HMP savevm, retried while record/replay refuses it for pending events ("Record/replay does not
   * allow making snapshot right now": a bottom half waits for its event).
   */
  public static void savevm(QemuMonitor qmp, String tag) throws Exception {
    for (int i = 0; ; i++) {
      try {
        qmp.hmp("savevm " + tag, QMP);
        return;
      } catch (QmpErrorException e) {
        if (i > 50 || !e.getMessage().contains("does not allow")) {
          throw e;
        }
        Thread.sleep(100);
      }
    }
  }
}
