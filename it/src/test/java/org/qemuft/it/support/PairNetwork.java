package org.qemuft.it.support;

import java.io.IOException;
import java.util.List;

/**
 * The network of a protected pair, built from namespaces as two hosts on a LAN would be:
 *
 * <pre>
 *   ns A (primary host)          ns L (the LAN switch)          ns B (backup host)
 *   tap -- brA -- vA ======== vAL -- brL -- vBL ======== vB -- brB -- tap
 *   lgA 10.77.0.1 ====================== logging link ==================== lgB 10.77.0.2
 *                                        |
 *                                       vCL ======== vC 10.50.0.100  ns C (a client)
 * </pre>
 *
 * The guest is 10.50.0.10/24 on the LAN. Each host's TAP is persistent and enslaved to its host
 * bridge, so the controller in that namespace only attaches to it by name. Everything is removed
 * on {@link #close()}.
 */
public final class PairNetwork implements AutoCloseable {
  public static final String GUEST_IP = "10.50.0.10";
  /** The test guest's kernel arguments for this network: its address on the LAN. */
  public static final String GUEST_KERNEL_ARGS = "qemuft.ip=" + GUEST_IP + "/24";
  public static final String CLIENT_IP = "10.50.0.100";
  public static final String PRIMARY_CHANNEL_IP = "10.77.0.1";
  public static final String BACKUP_CHANNEL_IP = "10.77.0.2";

  private final TestNet net = new TestNet();
  public final String nsA;
  public final String nsB;
  public final String nsC;
  public final String nsL;
  public final String tapA;
  public final String tapB;
  /** The logging link's interface in A (take it down to cut the channel). */
  public final String logA;

  public PairNetwork() throws IOException {
    try {
      nsL = net.netns("L");
      nsA = net.netns("A");
      nsB = net.netns("B");
      nsC = net.netns("C");
      String brL = net.bridge(nsL, "brL");
      tapA = host(nsA, "A", brL);
      tapB = host(nsB, "B", brL);
      net.veth(net.name("vC"), nsC, net.name("vCL"), nsL);
      net.ip(nsL, List.of("link", "set", net.name("vCL"), "master", brL));
      net.ip(nsC, List.of("addr", "add", CLIENT_IP + "/24", "dev", net.name("vC")));
      logA = net.name("lgA");
      net.veth(logA, nsA, net.name("lgB"), nsB);
      net.ip(nsA, List.of("addr", "add", PRIMARY_CHANNEL_IP + "/24", "dev", logA));
      net.ip(nsB, List.of("addr", "add", BACKUP_CHANNEL_IP + "/24", "dev", net.name("lgB")));
    } catch (IOException | RuntimeException e) {
      net.close();
      throw e;
    }
  }

  /**
   * A host namespace: its bridge, its TAP on the bridge, and its uplink to the LAN. Both hosts'
   * TAPs have the same name (one pair configuration names the uplink for both hosts).
   */
  private String host(String ns, String h, String brL) throws IOException {
    String br = net.bridge(ns, "br" + h);
    String tap = net.name("tap");
    net.ip(ns, List.of("tuntap", "add", "dev", tap, "mode", "tap"));
    net.ip(ns, List.of("link", "set", tap, "master", br, "up"));
    String up = net.name("v" + h);
    String down = net.name("v" + h + "L");
    net.veth(up, ns, down, nsL);
    net.ip(ns, List.of("link", "set", up, "master", br));
    net.ip(nsL, List.of("link", "set", down, "master", brL));
    return tap;
  }

  /** Runs {@code ip ARGS} in a namespace (e.g. to take the logging link down). */
  public String ip(String ns, String... args) throws IOException {
    return net.ip(ns, List.of(args));
  }

  @Override
  public void close() {
    net.close();
  }
}
