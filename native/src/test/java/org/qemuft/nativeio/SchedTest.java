package org.qemuft.nativeio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class SchedTest {
  /** The scheduling policy of a thread: field 41 of /proc/TID/stat (after the parenthesised name). */
  static int policy(long tid) throws IOException {
    String stat = Files.readString(Path.of("/proc", Long.toString(tid), "stat"));
    String[] after = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    return Integer.parseInt(after[41 - 3]);
  }

  @Test
  void aThreadPutUnderSchedIdleHasThatPolicyUntilPutBack() throws Exception {
    Process sleeper = new ProcessBuilder("sleep", "30").start();
    try {
      assertThat(policy(sleeper.pid())).isEqualTo(0); // SCHED_OTHER
      assertThat(Sched.policy(sleeper.pid())).isEqualTo(0);
      Sched.idle(sleeper.pid());
      assertThat(policy(sleeper.pid())).isEqualTo(5); // SCHED_IDLE
      assertThat(Sched.policy(sleeper.pid())).isEqualTo(5);
      Sched.normal(sleeper.pid());
      assertThat(policy(sleeper.pid())).isEqualTo(0);
      assertThat(Sched.policy(sleeper.pid())).isEqualTo(0);
    } finally {
      sleeper.destroyForcibly();
      sleeper.waitFor(10, TimeUnit.SECONDS);
    }
  }

  @Test
  void aThreadThatDoesNotExistIsNamedWithTheReason() throws Exception {
    Process gone = new ProcessBuilder("true").start();
    gone.waitFor(10, TimeUnit.SECONDS); // reaped: its id names no thread (until the kernel reuses it)
    assertThatThrownBy(() -> Sched.idle(gone.pid()))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("thread " + gone.pid())
        .hasMessageContaining("No such process");
    assertThatThrownBy(() -> Sched.policy(gone.pid()))
        .isInstanceOf(IOException.class)
        .hasMessageContaining("thread " + gone.pid())
        .hasMessageContaining("No such process");
  }
}
