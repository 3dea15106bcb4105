package org.qemuft.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The go-live test-and-set of design step 7: per pair and epoch one lock file, {@code
 * golive/PAIR/EPOCH.lock}. Whoever wants to run alone (the backup that lost its primary, the
 * primary that lost its backup) must win it first; whoever loses halts its VM. Exactly one {@link
 * #tryAcquire} per pair and epoch ever returns {@code won}, and every other caller learns the
 * winner.
 *
 * <p>How: the claimant's verifier (the first 8 bytes of its random claim id) goes with an
 * exclusive create of the lock file ({@link SharedStorage#createExclusive}: NFSv3 CREATE
 * EXCLUSIVE); the server lets exactly one verifier create the name. The winner then writes its
 * record (host, pid, role, wall time, claim id) into the file and commits it. A loser reads the
 * record; if the file is still empty it waits for the record up to the record wait, and if the
 * winner died before writing it, it still knows the lock is taken and reports the winner's
 * verifier from the file's attributes ({@link GoLiveRecord#written()} false). The reasoning is
 * in docs/shared-storage.md.
 *
 * <p>If the storage does not answer, {@link #tryAcquire} keeps trying for the storage's wait limit
 * and then throws {@link StorageUnavailableException}: that is neither winning nor losing. Do not
 * run alone; call again. Calling again is safe: this object claims with the same claim id (and so
 * the same verifier) for the same pair, epoch and claimant every time, so if an earlier call's
 * create did reach the server (its reply lost), the later call is told it won. One claimant is
 * one party: two parties must differ in host, pid or role.
 *
 * <p>Thread-safe.
 */
public final class GoLiveLock {
  private static final Logger LOG = LoggerFactory.getLogger(GoLiveLock.class);
  private static final Pattern PAIR = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,63}");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final int FORMAT = 1;
  /** How long a loser waits for the winner's record by default. */
  public static final Duration DEFAULT_RECORD_WAIT = Duration.ofSeconds(10);
  private static final long FIRST_PAUSE_NANOS = Duration.ofMillis(5).toNanos();
  private static final long MAX_PAUSE_NANOS = Duration.ofMillis(200).toNanos();

  private final SharedStorage storage;
  private final Duration recordWait;
  /** The claim record per pair, epoch and claimant, reused by every retry. */
  private final ConcurrentHashMap<ClaimKey, GoLiveRecord> claims = new ConcurrentHashMap<>();

  private record ClaimKey(String pairId, long epoch, Claimant claimant) {}

  /** A lock on {@code storage} whose losers wait up to {@link #DEFAULT_RECORD_WAIT} for the winner's record. */
  public GoLiveLock(SharedStorage storage) {
    this(storage, DEFAULT_RECORD_WAIT);
  }

  /**
   * @param recordWait how long a loser that finds the lock file still empty waits for the
   *     winner's record before it reports the lock as taken by a claim whose record is not
   *     written (it has lost either way; the wait only decides how much it can tell)
   */
  public GoLiveLock(SharedStorage storage, Duration recordWait) {
    this.storage = Objects.requireNonNull(storage, "storage");
    this.recordWait = Objects.requireNonNull(recordWait, "recordWait");
    if (recordWait.isNegative()) {
      throw new IllegalArgumentException("go-live record wait " + recordWait + " must not be negative");
    }
  }

  /** The outcome of one attempt: whether this caller won, and the winner's record either way. */
  public record Outcome(boolean won, GoLiveRecord winner) {}

  /** The lock's name inside shared storage: {@code golive/PAIR/EPOCH.lock}. */
  public static String lockName(String pairId, long epoch) {
    checkPair(pairId);
    if (epoch < 0) {
      throw new IllegalArgumentException("epoch " + epoch + " must not be negative");
    }
    return "golive/" + pairId + "/" + epoch + ".lock";
  }

  /**
   * Tries to win the go-live lock of {@code pairId} at {@code epoch} for {@code claimant}.
   *
   * @return won = true for exactly one call per pair and epoch; the winner's record either way
   *     (for a loser, possibly one whose record was not written: see {@link GoLiveRecord})
   * @throws StorageUnavailableException if the storage did not answer within its wait limit:
   *     the caller has NOT won and must not run alone
   * @throws StorageException if the storage refused (permissions, full) or the lock file holds
   *     something that is not a go-live record
   */
  public Outcome tryAcquire(String pairId, long epoch, Claimant claimant) throws StorageException {
    String name = lockName(pairId, epoch);
    Objects.requireNonNull(claimant, "claimant");
    GoLiveRecord mine = claims.computeIfAbsent(new ClaimKey(pairId, epoch, claimant), k ->
        new GoLiveRecord(pairId, epoch, claimant.host(), claimant.pid(), claimant.role(), Instant.now(), newClaimId()));
    byte[] verifier = verifierOf(mine.claimId());
    // Operators match a loser's "taken by claim <verifier>" against this line.
    LOG.info("claiming go-live lock {} on {} as {} on {} (pid {}): claim {}", name, storage.describe(),
        claimant.role(), claimant.host(), claimant.pid(), mine.claimId());
    if (storage.createExclusive(name, verifier, encode(mine))) {
      return new Outcome(true, mine);
    }
    return awaitRecord(name, mine, verifier);
  }

  /**
   * The lock exists and the server did not let our verifier create it (now). Reads the winner's
   * record, waiting for it while the file is empty. Our own claim shows up here when an earlier
   * call of ours won but its answer was lost (the record is ours), or when the server answered
   * EXISTS to our repeated create while racing with our own first one (the file is empty and
   * holds our verifier: the create is repeated, which now succeeds).
   */
  private Outcome awaitRecord(String name, GoLiveRecord mine, byte[] verifier) throws StorageException {
    long deadline = System.nanoTime() + recordWait.toNanos();
    long pause = FIRST_PAUSE_NANOS;
    while (true) {
      byte[] bytes = storage.read(name).orElseThrow(() -> vanished(name));
      if (bytes.length > 0) {
        Optional<GoLiveRecord> r = parse(mine.pairId(), mine.epoch(), name, bytes, System.nanoTime() > deadline);
        if (r.isPresent()) {
          return new Outcome(r.get().claimId().equals(mine.claimId()), r.get());
        }
        // Not a whole record yet; the winner's single WRITE is normally seen whole or not at all.
      } else {
        Optional<byte[]> stored = storage.createVerifier(name);
        boolean ours = stored.isPresent() && Verifiers.same(stored.get(), verifier);
        if (ours && storage.createExclusive(name, verifier, encode(mine))) {
          return new Outcome(true, mine);
        }
        if (System.nanoTime() > deadline) {
          if (ours) {
            throw new StorageException(storage.describe() + ": go-live lock " + name + " is empty and holds this"
                + " claimant's own verifier " + Verifiers.hex(verifier) + ", but the server does not let it finish"
                + " its claim. Neither won nor lost: do not run alone; check the storage, then call again.");
          }
          GoLiveRecord taken = GoLiveRecord.unwritten(mine.pairId(), mine.epoch(),
              stored.map(Verifiers::hex).orElse("unknown"));
          LOG.warn("go-live lock {} on {}: {}; waited {} ms for the record. This claimant ({}) has lost and must"
              + " halt.", name, storage.describe(), taken.summary(), recordWait.toMillis(), mine.role());
          return new Outcome(false, taken);
        }
      }
      sleep(Math.min(pause, Math.max(0, deadline - System.nanoTime())));
      pause = Math.min(pause * 2, MAX_PAUSE_NANOS);
    }
  }

  /**
   * Who won the lock of {@code pairId} at {@code epoch}, if anyone has. A lock file that is still
   * empty gives a record with {@code written} false (the lock is taken; see {@link GoLiveRecord}).
   */
  public Optional<GoLiveRecord> read(String pairId, long epoch) throws StorageException {
    String name = lockName(pairId, epoch);
    Optional<byte[]> bytes = storage.read(name);
    if (bytes.isEmpty()) {
      return Optional.empty();
    }
    if (bytes.get().length == 0) {
      return Optional.of(GoLiveRecord.unwritten(pairId, epoch,
          storage.createVerifier(name).map(Verifiers::hex).orElse("unknown")));
    }
    return parse(pairId, epoch, name, bytes.get(), true);
  }

  /**
   * The record in {@code bytes}; empty if it does not parse and {@code last} is false (it may be
   * in the middle of being written); an error if it does not parse and {@code last} is true, or
   * names another pair or epoch.
   */
  private Optional<GoLiveRecord> parse(String pairId, long epoch, String name, byte[] bytes, boolean last)
      throws StorageException {
    GoLiveRecord r;
    try {
      r = decode(name, bytes);
    } catch (StorageException e) {
      if (last) {
        throw new StorageException(storage.describe() + ": " + e.getMessage(), e);
      }
      return Optional.empty();
    }
    if (!r.pairId().equals(pairId) || r.epoch() != epoch) {
      throw new StorageException(storage.describe() + ": go-live lock " + name + " holds a record for pair "
          + r.pairId() + " epoch " + r.epoch() + "; the file was copied or renamed by hand. Halt and check.");
    }
    return Optional.of(r);
  }

  private StorageException vanished(String name) {
    return new StorageException(storage.describe() + ": go-live lock " + name + " existed a moment ago but is"
        + " gone now; something removed it. Never remove the lock of a live epoch; halt and check the storage");
  }

  /**
   * A new claim id: 128 random bits in hex, except that the top two bits of bytes 3 and 7 are
   * zero, so that its first 8 bytes are a valid verifier (see {@link Verifiers}).
   */
  static String newClaimId() {
    byte[] id = new byte[16];
    RANDOM.nextBytes(id);
    id[3] &= 0x3f;
    id[7] &= 0x3f;
    return HexFormat.of().formatHex(id);
  }

  /** The exclusive-create verifier of a claim: the first 8 bytes of its id. */
  static byte[] verifierOf(String claimId) {
    return HexFormat.of().parseHex(claimId, 0, 2 * Verifiers.SIZE);
  }

  private static void sleep(long nanos) throws StorageUnavailableException {
    try {
      Thread.sleep(Duration.ofNanos(nanos));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new StorageUnavailableException("interrupted while waiting for the go-live record", e);
    }
  }

  /** The epochs of {@code pairId} that have a lock file, ascending. */
  public List<Long> epochs(String pairId) throws StorageException {
    checkPair(pairId);
    List<Long> out = new ArrayList<>();
    for (String n : storage.list("golive/" + pairId)) {
      if (n.matches("[0-9]{1,19}\\.lock")) {
        out.add(Long.parseLong(n.substring(0, n.length() - 5)));
      }
    }
    out.sort(null);
    return out;
  }

  /**
   * Removes the lock files of {@code pairId} for epochs before {@code keepFrom}. Only for epochs
   * that are over for good: the lock of the current epoch must never be removed.
   *
   * @return how many were removed
   */
  public int pruneBefore(String pairId, long keepFrom) throws StorageException {
    int removed = 0;
    for (long e : epochs(pairId)) {
      if (e < keepFrom && storage.delete(lockName(pairId, e))) {
        removed++;
      }
    }
    return removed;
  }

  static byte[] encode(GoLiveRecord r) {
    ObjectNode o = JSON.createObjectNode();
    o.put("format", FORMAT);
    o.put("pair", r.pairId());
    o.put("epoch", r.epoch());
    o.put("host", r.host());
    o.put("pid", r.pid());
    o.put("role", r.role());
    o.put("claimedAt", r.claimedAt().toString());
    o.put("claimId", r.claimId());
    try {
      return (JSON.writeValueAsString(o) + "\n").getBytes(StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException("cannot encode go-live record " + r, e);
    }
  }

  static GoLiveRecord decode(String name, byte[] bytes) throws StorageException {
    try {
      JsonNode o = JSON.readTree(bytes);
      if (o == null || !o.isObject() || o.path("format").asInt(-1) != FORMAT) {
        throw new IOException("not a format-" + FORMAT + " go-live record");
      }
      return new GoLiveRecord(text(o, "pair"), o.get("epoch").asLong(), text(o, "host"),
          o.get("pid").asLong(), text(o, "role"), Instant.parse(text(o, "claimedAt")), text(o, "claimId"));
    } catch (IOException | RuntimeException e) {
      throw new StorageException("go-live lock " + name + " exists but is not a readable go-live record ("
          + e.getMessage() + "): " + new String(bytes, 0, Math.min(bytes.length, 200), StandardCharsets.UTF_8)
          + ". The lock is taken all the same: do not run alone; check the storage.", e);
    }
  }

  private static String text(JsonNode o, String field) throws IOException {
    JsonNode n = o.get(field);
    if (n == null || !n.isTextual()) {
      throw new IOException("field '" + field + "' is missing");
    }
    return n.asText();
  }

  private static void checkPair(String pairId) {
    if (pairId == null || !PAIR.matcher(pairId).matches()) {
      throw new IllegalArgumentException("pair id '" + pairId + "' must be 1-64 of [A-Za-z0-9._-], not starting"
          + " with '.' or '-'");
    }
  }
}
