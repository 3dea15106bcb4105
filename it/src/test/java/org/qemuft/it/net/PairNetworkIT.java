package org.qemuft.it.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import org.junit.jupiter.api.Test;
import org.qemuft.nativeio.Netns;
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

  @Test
  void socketsOpenedThroughNetnsLiveInThatNamespace() throws Exception {
    try (PairNetwork net = new PairNetwork()) {
      // Listen in A on the logging link's address; connect from B: only possible inside them.
      ServerSocket server = Netns.call(net.nsA, () -> new ServerSocket(7788, 1,
          InetAddress.getByName(PairNetwork.PRIMARY_CHANNEL_IP)));
      try (server) {
        Socket client = Netns.call(net.nsB, () -> new Socket(PairNetwork.PRIMARY_CHANNEL_IP, 7788));
        try (client; Socket accepted = server.accept()) {
          client.getOutputStream().write(42);
          assertThat(accepted.getInputStream().read()).isEqualTo(42);
          assertThat(accepted.getInetAddress().getHostAddress()).isEqualTo(PairNetwork.BACKUP_CHANNEL_IP);
        }
      }
      assertThatThrownBy(() -> Netns.call("qftnosuchns", () -> 1))
          .hasMessageContaining("cannot open network namespace /var/run/netns/qftnosuchns");
    }
  }
}
