package org.qemuft.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The QMP commands qemu-ft uses, typed: no JSON in or out. Wraps a {@link QmpClient} ({@link
 * #client()} reaches it for anything not here). Thread-safe as the client is. Each method throws the
 * client's three {@link QmpException} kinds; commands without their own timeout wait {@link
 * QmpClient#DEFAULT_TIMEOUT}.
 */
public final class QemuMonitor implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(QemuMonitor.class);
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
  private static final AtomicLong JOB_SEQUENCE = new AtomicLong();
  /** How often a job's state is polled when no JOB_STATUS_CHANGE event wakes the wait. */
  private static final Duration JOB_POLL = Duration.ofSeconds(1);
  private static final Duration JOB_DISMISS_TIMEOUT = Duration.ofSeconds(10);
  private static final Duration JOB_QUERY_GRACE = Duration.ofSeconds(2);

  private final QmpClient client;

  public QemuMonitor(QmpClient client) {
    this.client = Objects.requireNonNull(client, "client");
  }

  /** Connects to QEMU's QMP socket (see {@link QmpClient#connect}). */
  public static QemuMonitor connect(Path unixSocket, Duration timeout) throws QmpException {
    return new QemuMonitor(QmpClient.connect(unixSocket, timeout));
  }

  /** The raw client: JSON commands and events. */
  public QmpClient client() {
    return client;
  }

  /** {@code query-status}. */
  public VmStatus queryStatus() throws QmpException {
    JsonNode r = client.execute("query-status", null);
    return new VmStatus(r.path("status").asText(), r.path("running").asBoolean());
  }

  /** {@code stop}: pauses the vCPUs; QEMU sends STOP before it replies. Stopping a stopped VM is fine. */
  public void stop() throws QmpException {
    client.execute("stop", null);
  }

  /** {@code cont}: resumes the vCPUs; QEMU sends RESUME before it replies. */
  public void cont() throws QmpException {
    client.execute("cont", null);
  }

  /**
   * {@code quit}: QEMU exits. It replies first and closes the connection as it exits; if the
   * connection closes before the reply arrives, that counts as done too. Returns without waiting
   * for the process to end.
   */
  public void quit() throws QmpException {
    boolean wasOpen = client.isOpen();
    try {
      client.execute("quit", null);
    } catch (QmpConnectionException e) {
      if (!wasOpen || client.isOpen()) {
        throw e; // closed before, or a timeout: QEMU did not say it is quitting
      }
      LOG.debug("QEMU on {} closed the connection before replying to quit", client.socket());
    }
  }

  /**
   * {@code system_reset}. Note: qemu-ft starts QEMU with {@code -no-reboot}, under which a reset
   * request ends QEMU instead of resetting the guest.
   */
  public void systemReset() throws QmpException {
    client.execute("system_reset", null);
  }

  /** {@code query-replay}: the record/replay mode, log file and current instruction count. */
  public ReplayInfo queryReplay() throws QmpException {
    JsonNode r = client.execute("query-replay", null);
    JsonNode file = r.get("filename");
    return new ReplayInfo(r.path("mode").asText(), file == null || file.isNull() ? null : file.asText(),
        r.path("icount").asLong());
  }

  /**
   * {@code replay-break}: in replay mode ({@code play}), stop the VM when it reaches {@code icount}
   * (status {@code paused}, with a STOP event). QEMU refuses it in other modes and for an icount in
   * the past ({@link QmpErrorException}, GenericError).
   */
  public void replayBreak(long icount) throws QmpException {
    client.execute("replay-break", NODES.objectNode().put("icount", icount));
  }

  /** {@link #hmp(String, Duration)} with the default timeout. */
  public String hmp(String commandLine) throws QmpException {
    return hmp(commandLine, QmpClient.DEFAULT_TIMEOUT);
  }

  /**
   * Runs a human-monitor (HMP) command through {@code human-monitor-command} and returns its text
   * output, with QEMU's CR LF line ends turned into LF.
   *
   * <p>Quirk: HMP reports most failures as text, while QMP calls the command a success. This
   * method recognises the forms QEMU 7.2's HMP uses for the commands qemu-ft runs (savevm, loadvm,
   * delvm, info ...) and throws {@link QmpErrorException} for them:
   *
   * <ul>
   *   <li>a line starting {@code Error: } (how hmp_handle_error() prints an Error: savevm, loadvm,
   *       delvm and most others) → class {@code GenericError};
   *   <li>{@code unknown command: '...'} → class {@code CommandNotFound};
   *   <li>{@code Command "..." is not available} / {@code Command '...' not available until machine
   *       initialization has completed.} → class {@code CommandNotFound};
   *   <li>a final {@code Try "help ..." for more information} (the arguments did not parse) →
   *       class {@code GenericError}.
   * </ul>
   *
   * The description is the whole output. Other failure texts of other commands are returned as
   * output: read them.
   */
  public String hmp(String commandLine, Duration timeout) throws QmpException {
    Objects.requireNonNull(commandLine, "commandLine");
    JsonNode r = client.execute("human-monitor-command",
        NODES.objectNode().put("command-line", commandLine), timeout);
    String out = r.asText().replace("\r\n", "\n");
    String errorClass = hmpErrorClass(out);
    if (errorClass != null) {
      throw new QmpErrorException("human-monitor-command", client.socket(), errorClass, out.strip(),
          "HMP '" + commandLine + "' printed an error, though QMP reported success");
    }
    return out;
  }

  /** The error class for HMP output that reports a failure, or null if it reports none. */
  static String hmpErrorClass(String output) {
    for (String line : output.lines().toList()) {
      if (line.startsWith("unknown command: ")
          || (line.startsWith("Command ") && (line.contains(" is not available") || line.contains(" not available until")))) {
        return "CommandNotFound";
      }
      if (line.startsWith("Error: ") || (line.startsWith("Try \"help ") && line.endsWith("\" for more information"))) {
        return "GenericError";
      }
    }
    return null;
  }

  /**
   * {@code snapshot-save}: saves the VM's state and a snapshot {@code tag} of every node in {@code
   * devices}, the RAM and device state into node {@code vmstateNode}, and waits until the job has
   * concluded. The VM is stopped while it saves and resumed afterwards if it ran.
   *
   * <p>Nodes are node names, not drive ids: {@link #queryBlock()} gives each drive's {@link
   * BlockInfo#nodeName()}. Every node in {@code devices} must support snapshots (qcow2); the
   * vmstate node must be among them.
   *
   * @throws QmpErrorException the job could not start or failed; its error is QEMU's (class
   *     GenericError: jobs report a text only). Under record/replay QEMU refuses while replay events
   *     are pending ("Record/replay does not allow making snapshot right now").
   * @throws QmpConnectionException no conclusion within {@code timeout} (the job stays in QEMU), or
   *     the connection broke
   */
  public void snapshotSave(String tag, String vmstateNode, List<String> devices, Duration timeout)
      throws QmpException {
    ObjectNode args = NODES.objectNode().put("tag", tag).put("vmstate", vmstateNode);
    devices.forEach(args.putArray("devices")::add);
    runJob("snapshot-save", tag, args, timeout);
  }

  /**
   * {@code snapshot-load}: loads snapshot {@code tag} (see {@link #snapshotSave} for the nodes) and
   * waits until the job has concluded. The VM is stopped while it loads and resumed if it ran.
   *
   * <p>A load that fails leaves the VM stopped, in status {@code restore-vm}, whether it ran
   * before or not (QEMU 7.2 resumes only after a successful load): its state may be half loaded,
   * so this method does not resume it either. Load another snapshot, or end QEMU.
   */
  public void snapshotLoad(String tag, String vmstateNode, List<String> devices, Duration timeout)
      throws QmpException {
    ObjectNode args = NODES.objectNode().put("tag", tag).put("vmstate", vmstateNode);
    devices.forEach(args.putArray("devices")::add);
    runJob("snapshot-load", tag, args, timeout);
  }

  /** {@code snapshot-delete}: deletes snapshot {@code tag} from {@code devices} and waits for the job. */
  public void snapshotDelete(String tag, List<String> devices, Duration timeout) throws QmpException {
    ObjectNode args = NODES.objectNode().put("tag", tag);
    devices.forEach(args.putArray("devices")::add);
    runJob("snapshot-delete", tag, args, timeout);
  }

  /**
   * {@code announce-self}: every NIC sends gratuitous RARP frames so the LAN learns where the
   * guest's MAC now lives (after going live), with QEMU's default schedule for migrations: 5 rounds,
   * the first after 50 ms, 100 ms more between rounds, at most 550 ms apart.
   */
  public void announceSelf() throws QmpException {
    client.execute("announce-self",
        NODES.objectNode().put("initial", 50).put("max", 550).put("rounds", 5).put("step", 100));
  }

  /** {@code query-block}: the block backends, in QEMU's order. */
  public List<BlockInfo> queryBlock() throws QmpException {
    List<BlockInfo> out = new ArrayList<>();
    for (JsonNode b : client.execute("query-block", null)) {
      JsonNode in = b.get("inserted");
      out.add(new BlockInfo(b.path("device").asText(""), textOrNull(b.get("qdev")),
          in == null ? null : textOrNull(in.get("node-name")),
          in == null ? null : textOrNull(in.get("file")),
          in == null ? null : textOrNull(in.get("drv")),
          in != null && in.path("ro").asBoolean()));
    }
    return out;
  }

  /** {@code query-version}. */
  public QemuVersion queryVersion() throws QmpException {
    JsonNode r = client.execute("query-version", null);
    JsonNode q = r.path("qemu");
    return new QemuVersion(q.path("major").asInt(), q.path("minor").asInt(), q.path("micro").asInt(),
        r.path("package").asText("").strip());
  }

  /** Closes the client; QEMU keeps running. */
  @Override
  public void close() {
    client.close();
  }

  /**
   * Starts a job, waits until it has concluded, dismisses it and reports its error. The wait wakes
   * on the job's JOB_STATUS_CHANGE events and also polls query-jobs, so a dropped event cannot make
   * it miss the end.
   */
  private void runJob(String command, String tag, ObjectNode args, Duration timeout) throws QmpException {
    Objects.requireNonNull(tag, "tag");
    Objects.requireNonNull(timeout, "timeout");
    long deadline = System.nanoTime() + timeout.toNanos();
    String jobId = "qemuft-" + command + "-" + JOB_SEQUENCE.incrementAndGet();
    args.put("job-id", jobId);
    String context = "job " + jobId + ", tag '" + tag + "'";
    BlockingQueue<QmpEvent> changes = new LinkedBlockingQueue<>();
    Subscription jobEvents = client.onEvent("JOB_STATUS_CHANGE", e -> {
      if (jobId.equals(e.data().path("id").asText())) {
        changes.add(e);
      }
    });
    try {
      client.execute(command, args, remaining(deadline));
      JsonNode job;
      while (true) {
        // QEMU answers query-jobs only after the job's work (a bottom half in its main loop) is
        // done, so the query waits as long as the job may take, plus a grace at the deadline.
        job = queryJob(jobId, remaining(deadline).plus(JOB_QUERY_GRACE));
        if (job == null) {
          throw new QmpErrorException(command, client.socket(), "GenericError",
              "the job disappeared before it concluded (did another client dismiss it?)", context);
        }
        String status = job.path("status").asText();
        if (status.equals("concluded")) {
          break;
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new QmpConnectionException(command + " (" + context + ") did not conclude within "
              + timeout.toMillis() + " ms on " + client.socket() + "; its status is '" + status
              + "'. The job stays in QEMU: query-jobs shows it, job-dismiss removes it once concluded.");
        }
        changes.poll(Math.min(left, JOB_POLL.toNanos()), TimeUnit.NANOSECONDS);
      }
      dismiss(jobId);
      JsonNode error = job.get("error");
      if (error != null && !error.isNull()) {
        throw new QmpErrorException(command, client.socket(), "GenericError", error.asText(), context);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new QmpConnectionException("interrupted while waiting for " + command + " (" + context
          + ") on " + client.socket(), e);
    } finally {
      jobEvents.close();
    }
  }

  private JsonNode queryJob(String jobId, Duration timeout) throws QmpException {
    for (JsonNode j : client.execute("query-jobs", null, timeout)) {
      if (jobId.equals(j.path("id").asText())) {
        return j;
      }
    }
    return null;
  }

  private void dismiss(String jobId) throws QmpException {
    try {
      client.execute("job-dismiss", NODES.objectNode().put("id", jobId), JOB_DISMISS_TIMEOUT);
    } catch (QmpErrorException e) {
      LOG.warn("could not dismiss concluded job {} on {}: {}", jobId, client.socket(), e.getMessage());
    }
  }

  private static Duration remaining(long deadline) {
    return Duration.ofNanos(Math.max(1_000_000, deadline - System.nanoTime()));
  }

  private static String textOrNull(JsonNode n) {
    return n == null || n.isNull() ? null : n.asText();
  }
}
