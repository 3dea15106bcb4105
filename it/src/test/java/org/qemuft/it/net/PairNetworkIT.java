package org.qemuft.it.net;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.qemuft.it.support.PairNetwork;
import org.qemuft.it.support.TestNet;

/** The pair's test topology is what the pair tests assume, and vanishes afterwards. */
class PairNetworkIT {
  @Test
  void hostsReachEachOtherOnTheLoggingLinkAndLeaveNothingBehind() throws Exception {
    String nsA;
    try (PairNetwork net = new PairNetwork()) {
      nsA = net.nsA;
      String ping = TestNet.run("ip", "netns", "exec", net.nsA, "busybox", "ping", "-c", "1", "-W", "5",
          PairNetwork.BACKUP_CHANNEL_IP);
      assertThat(ping).contains("1 packets received");
      assertThat(net.ip(net.nsA, "-o", "link", "show", net.tapA)).contains("master");
      assertThat(net.ip(net.nsB, "-o", "link", "show", net.tapB)).contains("master");
    }
    assertThat(TestNet.run("ip", "netns", "list")).doesNotContain(nsA);
  }
}
