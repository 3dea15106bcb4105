package org.qemuft.controller.gate;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class OutputGateTest {
  private final List<String> sent = Collections.synchronizedList(new ArrayList<>());
  private final OutputGate gate = new OutputGate(f -> sent.add(new String(f)), 1 << 20);

  @Test
  void aFrameWaitsForTheAckOfTheWholeFirstEventStartingAtOrAfterItsPosition() {
    gate.hold("a".getBytes(), 100);           // arrived when the log's write position was 100
    assertThat(gate.nextUnresolved()).isEqualTo(100);
    gate.acked(100);                           // everything before 100: not enough
    assertThat(sent).isEmpty();
    gate.eventStartsAt(105);                   // the first event at/after 100 starts at 105
    assertThat(gate.nextUnresolved()).isEqualTo(Long.MAX_VALUE);
    gate.acked(105);                           // acked up to its start only: still held
    assertThat(sent).isEmpty();
    gate.acked(110);                           // acked past its start = its whole event
    assertThat(sent).containsExactly("a");
    assertThat(gate.stats().heldNow()).isZero();
    assertThat(gate.stats().released()).isEqualTo(1);
  }

  @Test
  void theWaitForTheEventIsPartOfTheHoldAndMeasuredApart() throws Exception {
    gate.hold("a".getBytes(), 100);
    Thread.sleep(60);
    gate.eventStartsAt(100);
    Thread.sleep(60);
    gate.acked(101);
    OutputGate.Stats st = gate.stats();
    assertThat(st.waitEventP99Nanos()).isBetween(55_000_000L, st.holdP99Nanos() - 50_000_000L);
  }

  @Test
  void anEventStartingExactlyAtThePositionCounts() {
    gate.hold("a".getBytes(), 100);
    gate.eventStartsAt(100);
    gate.acked(101);
    assertThat(sent).containsExactly("a");
  }

  @Test
  void framesLeaveInTheOrderTheGuestSentThem() {
    gate.hold("a".getBytes(), 10);
    gate.hold("b".getBytes(), 20);
    gate.hold("c".getBytes(), 30);
    gate.eventStartsAt(12);   // releases a after 12
    gate.eventStartsAt(31);   // b and c after 31
    gate.acked(1000);
    assertThat(sent).containsExactly("a", "b", "c");
  }

  @Test
  void anAckThatCameBeforeResolutionReleasesOnResolution() {
    gate.hold("a".getBytes(), 10);
    gate.acked(50);
    assertThat(sent).isEmpty();
    gate.eventStartsAt(20);
    assertThat(sent).containsExactly("a");
  }

  @Test
  void beyondTheByteBoundNewFramesAreDroppedAndCounted() {
    OutputGate small = new OutputGate(f -> sent.add(new String(f)), 3);
    small.hold("ab".getBytes(), 1);
    small.hold("cd".getBytes(), 2);
    assertThat(small.stats().heldNow()).isEqualTo(1);
    assertThat(small.stats().dropped()).isEqualTo(1);
  }

  @Test
  void anUplinkErrorDropsThatFrameButNotTheOnesAfterIt() {
    OutputGate g = new OutputGate(f -> {
      if (f[0] == 'x') {
        throw new IOException("link down");
      }
      sent.add(new String(f));
    }, 1 << 20);
    g.hold("x".getBytes(), 1);
    g.hold("y".getBytes(), 2);
    g.eventStartsAt(3);
    g.acked(4);
    assertThat(sent).containsExactly("y");
    assertThat(g.stats().uplinkErrors()).isEqualTo(1);
  }

  @Test
  void concurrentHoldResolveAndAckReleaseEverythingOnceInOrder() throws Exception {
    int n = 20_000;
    Thread nic = new Thread(() -> {
      for (int i = 0; i < n; i++) {
        gate.hold(Integer.toString(i).getBytes(), 10L * i);
      }
    });
    Thread shipper = new Thread(() -> {
      for (long start = 0; start <= 10L * n + 10; start += 7) {
        while (gate.nextUnresolved() == Long.MAX_VALUE && start < 10L * n && gate.stats().released() + gate.stats().heldNow() < n) {
          Thread.onSpinWait();
        }
        if (start >= gate.nextUnresolved()) {
          gate.eventStartsAt(start);
        }
      }
    });
    Random r = new Random(1);
    Thread acker = new Thread(() -> {
      for (long a = 0; a <= 10L * n + 20; a += 1 + r.nextInt(40)) {
        gate.acked(a);
      }
      gate.acked(Long.MAX_VALUE);
    });
    nic.start();
    shipper.start();
    nic.join();
    shipper.join();
    acker.start();
    acker.join();
    assertThat(sent).hasSize(n);
    for (int i = 0; i < n; i++) {
      assertThat(sent.get(i)).isEqualTo(Integer.toString(i));
    }
  }
}
