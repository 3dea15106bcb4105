package org.qemuft.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * The go-live test-and-set of design step 7: per pair and epoch one lock file, {@code
 * golive/PAIR/EPOCH.lock}, created atomically with the winner's record in it. Whoever wants to
 * run alone (the backup that lost its primary, the primary that lost its backup) must win it
 * first; whoever loses halts its VM. Exactly one {@link #tryAcquire} per pair and epoch ever
 * returns {@code won}, and every other caller learns the same winner.
 *
 * <p>If the storage does not answer, {@link #tryAcquire} keeps trying for the storage's wait limit
 * and then throws {@link StorageUnavailableException}: that is neither winning nor losing. Do not
 * run alone; call again. Calling again is safe: this object claims with the same record for the
 * same pair, epoch and claimant every time, so if an earlier call's claim did reach the server
 * (its reply lost), the later call recognises the record as its own and reports it as won.
 * One claimant is one party: two parties must differ in host, pid or role.
 *
 * <p>Thread-safe.
 */
public final class GoLiveLock {
  private static final Pattern PAIR = Pattern.compile("[A-Za-z0-9_][A-Za-z0-9._-]{0,63}");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final SecureRandom RANDOM = new SecureRandom();
  private static final int FORMAT = 1;

  private final SharedStorage storage;
  /** The claim record per pair, epoch and claimant, reused by every retry. */
  private final ConcurrentHashMap<ClaimKey, GoLiveRecord> claims = new ConcurrentHashMap<>();

  private record ClaimKey(String pairId, long epoch, Claimant claimant) {}

  public GoLiveLock(SharedStorage storage) {
    this.storage = Objects.requireNonNull(storage, "storage");
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
   * @throws StorageUnavailableException if the storage did not answer within its wait limit:
   *     the caller has NOT won and must not run alone
   * @throws StorageException if the storage refused (permissions, full) or the lock file is not
   *     a go-live record
   */
  public Outcome tryAcquire(String pairId, long epoch, Claimant claimant) throws StorageException {
    String name = lockName(pairId, epoch);
    Objects.requireNonNull(claimant, "claimant");
    GoLiveRecord mine = claims.computeIfAbsent(new ClaimKey(pairId, epoch, claimant), k -> {
      byte[] id = new byte[16];
      RANDOM.nextBytes(id);
      return new GoLiveRecord(pairId, epoch, claimant.host(), claimant.pid(), claimant.role(),
          Instant.now(), HexFormat.of().formatHex(id));
    });
    if (storage.createExclusive(name, encode(mine))) {
      return new Outcome(true, mine);
    }
    GoLiveRecord winner = read(pairId, epoch).orElseThrow(() -> new StorageException(storage.describe()
        + ": go-live lock " + name + " existed a moment ago but cannot be read now; something removed it."
        + " Never remove the lock of a live epoch; halt and check the storage"));
    // Our own record: an earlier call of ours won, but its answer was lost (it threw unavailable).
    return new Outcome(winner.claimId().equals(mine.claimId()), winner);
  }

  /** Who won the lock of {@code pairId} at {@code epoch}, if anyone has. */
  public Optional<GoLiveRecord> read(String pairId, long epoch) throws StorageException {
    String name = lockName(pairId, epoch);
    Optional<byte[]> bytes = storage.read(name);
    if (bytes.isEmpty()) {
      return Optional.empty();
    }
    GoLiveRecord r = decode(name, bytes.get());
    if (!r.pairId().equals(pairId) || r.epoch() != epoch) {
      throw new StorageException(storage.describe() + ": go-live lock " + name + " holds a record for pair "
          + r.pairId() + " epoch " + r.epoch() + "; the file was copied or renamed by hand. Halt and check.");
    }
    return Optional.of(r);
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
