package org.qemuft.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A single-writer, single-reader byte stream in a shared-memory file: the replay log between a
 * QEMU (through libftshim, preloaded into it) and the controller. On the primary QEMU writes and
 * the controller reads; on the backup the controller writes and QEMU reads. The layout and the
 * protocol are those of native/src/main/c/ftring.h (docs/libftshim.md).
 *
 * <p>Positions count bytes since the stream began and never wrap; ring position 0 is offset 12
 * of QEMU's replay log file (just past the file header). A full ring blocks the writer — that is
 * the primary's flow control — and an empty ring the reader. Waiting sleeps on a futex in the
 * shared memory, never spins.
 *
 * <p>Waking a sleeper is a system call in the publishing thread, which on the primary is QEMU's
 * vCPU: a reader that sleeps as soon as it has drained the ring costs QEMU one wake-up per event
 * it logs (tens of percent of its speed). A shipper should therefore wait for a batch with {@link
 * #awaitReadable(long, Duration)} — QEMU then wakes it only when the batch is there, and the
 * timeout bounds the delay of a trickle — and keep {@link #awaitReadable(Duration)} for when
 * every byte matters at once. A writer waiting for room is woken when a quarter of the ring (or
 * all it still has to write) is free.
 *
 * <p>One thread may write while another reads; each role is claimed by the first process that
 * uses it (its pid is recorded in the ring), so a second writer or reader is refused. {@link
 * #close()} unmaps the ring (it does not delete the file: its creator does) and may be called from
 * any thread; a thread waiting in it returns within {@value #SLICE_MILLIS} ms.
 */
public final class LogRing implements AutoCloseable {
  /** "QMFTRING" read as a little-endian u64. */
  static final long MAGIC = 0x474e495254464d51L;
  static final int FORMAT = 2;
  static final int HEADER_SIZE = 4096;
  public static final long MIN_CAPACITY = 4096;
  public static final long MAX_CAPACITY = 1L << 30;
  /** Replay-log file offset of ring position 0 (QEMU 7.2's log header is 12 bytes). */
  public static final long BASE_OFFSET = 12;
  static final int REPLAY_VERSION = 0x00e0200c;

  // Header offsets (ftring.h, struct ftring_header).
  static final long OFF_MAGIC = 0;
  static final long OFF_FORMAT = 8;
  static final long OFF_HEADER_SIZE = 12;
  static final long OFF_CAPACITY = 16;
  static final long OFF_BASE_OFFSET = 24;
  static final long OFF_REPLAY_VERSION = 32;
  static final long OFF_LOG_VERSION_WRITTEN = 36;
  static final long OFF_WRITER_PID = 40;
  static final long OFF_READER_PID = 44;
  static final long OFF_WRITE_POS = 64;
  static final long OFF_WRITER_CLOSED = 72;
  static final long OFF_WRITER_WAITING = 76;
  static final long OFF_WRITE_SEQ = 80;
  static final long OFF_WRITER_WAKE_AT = 88;
  static final long OFF_READ_POS = 128;
  static final long OFF_READER_CLOSED = 136;
  static final long OFF_READER_WAITING = 140;
  static final long OFF_READ_SEQ = 144;
  static final long OFF_READER_WAKE_AT = 152;
  static final long OFF_WRITER_HOLD = 192;

  /** Longest single futex sleep: bounds how late a close() or an interrupt is noticed. */
  static final long SLICE_MILLIS = 100;

  private static final Duration MAX_WAIT = Duration.ofNanos(Long.MAX_VALUE / 4);
  private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
  private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();

  private final Path path;
  private final Arena arena;
  private final MemorySegment seg;
  private final MemorySegment data;
  private final long capacity;
  private final long mask;
  private final MemorySegment writeSeq;
  private final MemorySegment readSeq;
  private final MemorySegment writerTimespec;
  private final MemorySegment readerTimespec;
  private final int pid = (int) ProcessHandle.current().pid();
  /** Held (shared) by every operation, exclusively by close(), so the mapping outlives its users. */
  private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
  /** Bumped by {@link #wakeReader()}: a reader in {@link #awaitReadable(long, Duration)} returns. */
  private final java.util.concurrent.atomic.AtomicInteger readerWakes = new java.util.concurrent.atomic.AtomicInteger();
  private volatile boolean closed;
  private boolean writerClaimed;
  private boolean readerClaimed;

  private LogRing(Path path, Arena arena, MemorySegment seg) {
    this.path = path;
    this.arena = arena;
    this.seg = seg;
    this.capacity = seg.byteSize() - HEADER_SIZE;
    this.mask = capacity - 1;
    this.data = seg.asSlice(HEADER_SIZE, capacity);
    this.writeSeq = seg.asSlice(OFF_WRITE_SEQ, 4);
    this.readSeq = seg.asSlice(OFF_READ_SEQ, 4);
    this.writerTimespec = arena.allocate(16, 8);
    this.readerTimespec = arena.allocate(16, 8);
  }

  /**
   * Creates the ring file (mode 0600; it must not exist yet) with room for {@code capacity}
   * bytes, and maps it. Put rings in /dev/shm (memory, not disk) with a name starting "qemuft".
   *
   * @param capacity a power of two from {@value #MIN_CAPACITY} to 1 GiB
   * @throws IOException naming the file and the reason
   */
  public static LogRing create(Path file, long capacity) throws IOException {
    if (Long.bitCount(capacity) != 1 || capacity < MIN_CAPACITY || capacity > MAX_CAPACITY) {
      throw new IllegalArgumentException("log ring capacity must be a power of two from "
          + MIN_CAPACITY + " to " + MAX_CAPACITY + " bytes, got " + capacity);
    }
    Arena arena = Arena.ofShared();
    try (FileChannel ch = FileChannel.open(file,
        Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE),
        PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
      // READ_WRITE mapping grows the new file to the mapping's size.
      MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, HEADER_SIZE + capacity, arena);
      seg.set(ValueLayout.JAVA_INT, OFF_FORMAT, FORMAT);
      seg.set(ValueLayout.JAVA_INT, OFF_HEADER_SIZE, HEADER_SIZE);
      seg.set(ValueLayout.JAVA_LONG, OFF_CAPACITY, capacity);
      seg.set(ValueLayout.JAVA_LONG, OFF_BASE_OFFSET, BASE_OFFSET);
      seg.set(ValueLayout.JAVA_INT, OFF_REPLAY_VERSION, REPLAY_VERSION);
      // The magic last: whoever sees it sees a complete header.
      LONG.setRelease(seg, OFF_MAGIC, MAGIC);
      return new LogRing(file, arena, seg);
    } catch (FileAlreadyExistsException e) {
      arena.close();
      throw new IOException("log ring " + file + " already exists (left by an earlier run? "
          + "a ring is created fresh for each QEMU; remove it if nothing uses it)", e);
    } catch (IOException | RuntimeException e) {
      arena.close();
      throw new IOException("cannot create log ring " + file + ": " + e.getMessage(), e);
    }
  }

  /**
   * Maps an existing ring and checks its header: magic, format, capacity against the file size,
   * stream base offset and replay log version.
   *
   * @throws IOException naming the file and what is wrong with it
   */
  public static LogRing open(Path file) throws IOException {
    Arena arena = Arena.ofShared();
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      long size = ch.size();
      if (size < HEADER_SIZE + MIN_CAPACITY) {
        throw new IOException("log ring " + file + " is " + size + " bytes, too small for a "
            + "qemu-ft ring (at least " + (HEADER_SIZE + MIN_CAPACITY) + ")");
      }
      MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
      check(file, seg, size);
      return new LogRing(file, arena, seg);
    } catch (NoSuchFileException e) {
      arena.close();
      throw new IOException("log ring " + file + " does not exist", e);
    } catch (IOException e) {
      arena.close();
      throw e;
    } catch (RuntimeException e) {
      arena.close();
      throw new IOException("cannot map log ring " + file + ": " + e, e);
    }
  }

  private static void check(Path file, MemorySegment seg, long size) throws IOException {
    long magic = (long) LONG.getAcquire(seg, OFF_MAGIC);
    String why = null;
    int format = seg.get(ValueLayout.JAVA_INT, OFF_FORMAT);
    long capacity = seg.get(ValueLayout.JAVA_LONG, OFF_CAPACITY);
    long base = seg.get(ValueLayout.JAVA_LONG, OFF_BASE_OFFSET);
    int version = seg.get(ValueLayout.JAVA_INT, OFF_REPLAY_VERSION);
    long w = (long) LONG.getAcquire(seg, OFF_WRITE_POS);
    long r = (long) LONG.getAcquire(seg, OFF_READ_POS);
    if (magic != MAGIC) {
      why = String.format("magic is 0x%016x, not 0x%016x: not a qemu-ft log ring", magic, MAGIC);
    } else if (format != FORMAT) {
      why = "ring format " + format + ", this qemu-ft knows format " + FORMAT + " only "
          + "(created by a different qemu-ft version?)";
    } else if (seg.get(ValueLayout.JAVA_INT, OFF_HEADER_SIZE) != HEADER_SIZE) {
      why = "header size " + seg.get(ValueLayout.JAVA_INT, OFF_HEADER_SIZE) + ", expected "
          + HEADER_SIZE;
    } else if (Long.bitCount(capacity) != 1 || capacity < MIN_CAPACITY || capacity > MAX_CAPACITY
        || capacity + HEADER_SIZE != size) {
      why = "capacity " + capacity + " does not fit the file size " + size + " (must be a power "
          + "of two, file size = " + HEADER_SIZE + " + capacity)";
    } else if (base != BASE_OFFSET) {
      why = "stream base offset " + base + ", only " + BASE_OFFSET + " is supported";
    } else if (version != REPLAY_VERSION) {
      why = String.format("replay log version 0x%08x, qemu-ft supports QEMU 7.2's 0x%08x only",
          version, REPLAY_VERSION);
    } else if (Long.compareUnsigned(w, r) < 0 || w - r > capacity) {
      why = "positions are inconsistent (write " + w + ", read " + r + ", capacity " + capacity
          + "): the ring is damaged";
    }
    if (why != null) {
      throw new IOException("log ring " + file + ": " + why);
    }
  }

  public Path path() {
    return path;
  }

  /**
   * The pids of the processes that claimed the writer's and the reader's side (0: not claimed
   * yet), e.g. to tell whether a ring left behind is still in use.
   */
  public int[] claimants() {
    ensureOpen();
    return new int[] {
      (int) INT.getAcquire(seg, OFF_WRITER_PID), (int) INT.getAcquire(seg, OFF_READER_PID)
    };
  }

  public long capacity() {
    return capacity;
  }

  // Plain accessors need no lock: FFM makes an access racing with close() fail cleanly
  // (IllegalStateException), never touch unmapped memory.

  /** Bytes written since the stream began (the writer's position). */
  public long writePosition() {
    ensureOpen();
    return (long) LONG.getAcquire(seg, OFF_WRITE_POS);
  }

  /** Bytes read since the stream began (the reader's position). */
  public long readPosition() {
    ensureOpen();
    return (long) LONG.getAcquire(seg, OFF_READ_POS);
  }

  /** Bytes written and not yet read. */
  public long readable() {
    ensureOpen();
    long r = (long) LONG.getAcquire(seg, OFF_READ_POS);
    return (long) LONG.getAcquire(seg, OFF_WRITE_POS) - r;
  }

  /** Whether the writer has finished the stream (the reader gets end of stream once drained). */
  public boolean writerClosed() {
    ensureOpen();
    return (int) INT.getAcquire(seg, OFF_WRITER_CLOSED) != 0;
  }

  /** Whether the reader has gone for good (a write then fails). */
  public boolean readerClosed() {
    ensureOpen();
    return (int) INT.getAcquire(seg, OFF_READER_CLOSED) != 0;
  }

  /**
   * Writes up to {@code len} bytes, waiting while the ring is full until all are written or
   * {@code timeout} has passed ({@link Duration#ZERO}: only what fits now).
   *
   * @return the number of bytes written, 0..len
   * @throws IOException if another process is this ring's writer, or if the reader has closed
   *     the ring (nothing more can be delivered)
   * @throws IllegalStateException if this ring's writer was closed or the ring is closed
   */
  public int write(byte[] b, int off, int len, Duration timeout)
      throws IOException, InterruptedException {
    Objects.checkFromIndexSize(off, len, b.length);
    long deadline = deadline(timeout);
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      claim(true);
      if ((int) INT.getAcquire(seg, OFF_WRITER_CLOSED) != 0) {
        throw new IllegalStateException("log ring " + path + ": the writer has closed the stream");
      }
      int done = 0;
      while (done < len) {
        long w = (long) LONG.getOpaque(seg, OFF_WRITE_POS); // only this side stores it
        long space = capacity - (w - (long) LONG.getAcquire(seg, OFF_READ_POS));
        boolean held = (int) INT.getAcquire(seg, OFF_WRITER_HOLD) != 0;
        if (space == 0 || held) {
          if ((int) INT.getAcquire(seg, OFF_READER_CLOSED) != 0) {
            throw new IOException("log ring " + path + ": the reader (pid "
                + seg.get(ValueLayout.JAVA_INT, OFF_READER_PID) + ") has closed it; "
                + (len - done) + " of " + len + " bytes were not delivered");
          }
          long wakeAt = space == 0 ? w - capacity + Math.min(len - done, capacity / 4) : 0;
          if (!awaitLocked(true, wakeAt, deadline, 0)) {
            break;
          }
          continue;
        }
        int k = (int) Math.min(len - done, space);
        int at = (int) (w & mask);
        int first = (int) Math.min(k, capacity - at);
        MemorySegment.copy(b, off + done, data, ValueLayout.JAVA_BYTE, at, first);
        MemorySegment.copy(b, off + done + first, data, ValueLayout.JAVA_BYTE, 0, k - first);
        LONG.setRelease(seg, OFF_WRITE_POS, w + k);
        wakePeer(OFF_READER_WAITING, OFF_READER_WAKE_AT, w + k, writeSeq);
        done += k;
      }
      return done;
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * Reads the bytes available now, up to {@code len}; never waits.
   *
   * @return the number of bytes read; 0 if none are available; -1 once the writer has closed
   *     the stream and everything has been read
   * @throws IOException if another process is this ring's reader
   */
  public int read(byte[] b, int off, int len) throws IOException {
    Objects.checkFromIndexSize(off, len, b.length);
    return read(MemorySegment.ofArray(b).asSlice(off, len), null);
  }

  /**
   * Reads the bytes available now into {@code dst} (heap or direct), up to its remaining space,
   * and advances its position; never waits.
   *
   * @return as {@link #read(byte[], int, int)}
   */
  public int read(ByteBuffer dst) throws IOException {
    if (dst.isReadOnly()) {
      throw new IllegalArgumentException("cannot read a log ring into a read-only buffer");
    }
    return read(MemorySegment.ofBuffer(dst), dst);
  }

  private int read(MemorySegment dst, ByteBuffer advance) throws IOException {
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      claim(false);
      long r = (long) LONG.getOpaque(seg, OFF_READ_POS); // only this side stores it
      long avail = (long) LONG.getAcquire(seg, OFF_WRITE_POS) - r;
      if (avail == 0) {
        if ((int) INT.getAcquire(seg, OFF_WRITER_CLOSED) != 0
            && (long) LONG.getAcquire(seg, OFF_WRITE_POS) == r) {
          return -1;
        }
        return 0;
      }
      int k = (int) Math.min(dst.byteSize(), avail);
      int at = (int) (r & mask);
      int first = (int) Math.min(k, capacity - at);
      MemorySegment.copy(data, at, dst, 0, first);
      MemorySegment.copy(data, 0, dst, first, k - first);
      LONG.setRelease(seg, OFF_READ_POS, r + k);
      wakePeer(OFF_WRITER_WAITING, OFF_WRITER_WAKE_AT, r + k, readSeq);
      if (advance != null) {
        advance.position(advance.position() + k);
      }
      return k;
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * Waits until there is something to read or the writer has closed the stream. The writer wakes
   * this thread for its next byte: see the class comment before calling this in a loop.
   *
   * @return true if so, false if {@code timeout} passed first
   */
  public boolean awaitReadable(Duration timeout) throws InterruptedException {
    return awaitReadable(1, timeout);
  }

  /**
   * Waits until at least {@code minBytes} (at most half the capacity) can be read, the writer
   * has closed the stream, or {@code timeout} has passed; the writer wakes this thread only for
   * the whole batch. Read whatever is there afterwards.
   *
   * @return whether anything can be read (or the stream has ended) now
   */
  public boolean awaitReadable(long minBytes, Duration timeout) throws InterruptedException {
    if (minBytes < 1) {
      throw new IllegalArgumentException("minBytes must be >= 1, got " + minBytes);
    }
    long want = Math.min(minBytes, capacity / 2);
    int wakes = readerWakes.get();
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      awaitLocked(false, (long) LONG.getOpaque(seg, OFF_READ_POS) + want, deadline(timeout), wakes);
      return ready(false, (long) LONG.getOpaque(seg, OFF_READ_POS) + 1);
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * Waits until there is room to write or the reader has closed the ring.
   *
   * @return true if so, false if {@code timeout} passed first
   */
  public boolean awaitWritable(Duration timeout) throws InterruptedException {
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      long wakeAt = (long) LONG.getOpaque(seg, OFF_WRITE_POS) - capacity + 1;
      return awaitLocked(true, wakeAt, deadline(timeout), 0);
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * The sleeping half of the protocol in ftring.c: read the peer's sequence word, publish our
   * threshold and raise our "waiting" flag, make them visible to a peer that publishes without a
   * fence, look once more, sleep on the sequence word. {@code wakeAt} is the peer's position we
   * wait for: the read position for a writer, the write position for a reader.
   */
  private boolean awaitLocked(boolean writer, long wakeAt, long deadline, int readerWakesSeen)
      throws InterruptedException {
    long waitingFlag = writer ? OFF_WRITER_WAITING : OFF_READER_WAITING;
    long wakeAtOff = writer ? OFF_WRITER_WAKE_AT : OFF_READER_WAKE_AT;
    MemorySegment peerSeq = writer ? readSeq : writeSeq;
    long peerSeqOff = writer ? OFF_READ_SEQ : OFF_WRITE_SEQ;
    MemorySegment timespec = writer ? writerTimespec : readerTimespec;
    while (true) {
      if (ready(writer, wakeAt)) {
        return true;
      }
      if (!writer && readerWakes.get() != readerWakesSeen) {
        return false; // wakeReader(): the caller looks at what there is now
      }
      if (Thread.interrupted()) {
        throw new InterruptedException("interrupted waiting on log ring " + path);
      }
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        return false;
      }
      if (closed) {
        throw new IllegalStateException("log ring " + path + " was closed while waiting on it");
      }
      int seq = (int) INT.getAcquire(seg, peerSeqOff);
      LONG.setOpaque(seg, wakeAtOff, wakeAt);
      INT.setRelease(seg, waitingFlag, 1);
      VarHandle.fullFence();
      Futex.barrierOnPeers();
      if (!ready(writer, wakeAt) && !closed) {
        Futex.await(peerSeq, seq, Math.min(left, SLICE_MILLIS * 1_000_000L), timespec);
      }
      INT.setRelease(seg, waitingFlag, 0);
    }
  }

  /**
   * Ends a wait in {@link #awaitReadable(long, Duration)} of this process's reader now, whatever
   * its batch size; it then reads what there is. Any thread may call it; cheap when nobody waits
   * (no system call). A call that comes before the reader starts waiting is not remembered.
   */
  public void wakeReader() {
    lifecycle.readLock().lock();
    try {
      if (closed) {
        return;
      }
      readerWakes.incrementAndGet();
      VarHandle.fullFence();
      if ((int) INT.getAcquire(seg, OFF_READER_WAITING) != 0) {
        bumpAndWake(writeSeq); // the reader sleeps on the writer's sequence word
      }
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /** Whether the peer's position has reached {@code wakeAt}, or the peer has closed its side. */
  private boolean ready(boolean writer, long wakeAt) {
    if (writer) {
      return ((long) LONG.getAcquire(seg, OFF_READ_POS) >= wakeAt && (int) INT.getAcquire(seg, OFF_WRITER_HOLD) == 0)
          || (int) INT.getAcquire(seg, OFF_READER_CLOSED) != 0;
    }
    return (long) LONG.getAcquire(seg, OFF_WRITE_POS) >= wakeAt
        || (int) INT.getAcquire(seg, OFF_WRITER_CLOSED) != 0;
  }

  /** The publishing half: after storing our position {@code pos}, wake the peer if it waits. */
  private void wakePeer(long peerWaitingFlag, long peerWakeAtOff, long pos, MemorySegment mySeq) {
    VarHandle.fullFence();
    if ((int) INT.getAcquire(seg, peerWaitingFlag) != 0
        && pos >= (long) LONG.getOpaque(seg, peerWakeAtOff)
        && (int) INT.getAndSet(seg, peerWaitingFlag, 0) != 0) {
      bumpAndWake(mySeq);
    }
  }

  private void bumpAndWake(MemorySegment word) {
    int ignored = (int) INT.getAndAdd(word, 0L, 1);
    Futex.wake(word);
  }

  /**
   * Finishes the stream: the reader gets what was written, then end of stream. A replaying QEMU
   * then exits ("error reading the replay data") once it has replayed everything, so close the
   * writer only when the backup is to end, not to go live.
   */
  public void closeWriter() {
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      INT.setRelease(seg, OFF_WRITER_CLOSED, 1);
      bumpAndWake(writeSeq);
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * Flow control from the reader's side, whatever room the ring has: while held, the writer
   * (QEMU's log writes through libftshim, or {@link #write}) waits before its next byte; a
   * recording QEMU's guest stops there, at a point replay cannot tell from any other. Releasing
   * wakes it. Only the reader may hold; {@link #closeReader()} ends a hold (the writer then fails,
   * as on a full ring), so release before stopping a QEMU that should exit cleanly.
   *
   * @throws IOException if another process is this ring's reader
   */
  public void holdWriter(boolean hold) throws IOException {
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      claim(false);
      INT.setRelease(seg, OFF_WRITER_HOLD, hold ? 1 : 0);
      if (!hold) {
        bumpAndWake(readSeq); // the held writer sleeps on the reader's sequence word
      }
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /** Whether the reader holds the writer ({@link #holdWriter}). */
  public boolean writerHeld() {
    ensureOpen();
    return (int) INT.getAcquire(seg, OFF_WRITER_HOLD) != 0;
  }

  /** The reader is gone for good: a writer waiting for room (or writing later) fails. */
  public void closeReader() {
    lifecycle.readLock().lock();
    try {
      ensureOpen();
      INT.setRelease(seg, OFF_READER_CLOSED, 1);
      bumpAndWake(readSeq);
    } finally {
      lifecycle.readLock().unlock();
    }
  }

  /**
   * Unmaps the ring; the file stays (its creator deletes it). Neither closes the stream: use
   * {@link #closeWriter()} or {@link #closeReader()} for that. Idempotent.
   */
  @Override
  public void close() {
    closed = true;
    if (arena.scope().isAlive() && !lifecycle.isWriteLockedByCurrentThread()) {
      // Waiters in this JVM look again at once instead of at the end of their slice.
      try {
        Futex.wake(writeSeq);
        Futex.wake(readSeq);
      } catch (IllegalStateException ignored) {
        // already unmapped by a concurrent close
      }
    }
    lifecycle.writeLock().lock();
    try {
      if (arena.scope().isAlive()) {
        arena.close();
      }
    } finally {
      lifecycle.writeLock().unlock();
    }
  }

  @Override
  public String toString() {
    if (closed) {
      return "LogRing[" + path + ", closed]";
    }
    return "LogRing[" + path + ", capacity " + capacity + ", write " + writePosition()
        + ", read " + readPosition() + "]";
  }

  private void claim(boolean writer) throws IOException {
    if (writer ? writerClaimed : readerClaimed) {
      return;
    }
    long off = writer ? OFF_WRITER_PID : OFF_READER_PID;
    int holder = (int) INT.compareAndExchange(seg, off, 0, pid);
    if (holder != 0 && holder != pid) {
      boolean alive = ProcessHandle.of(holder).map(ProcessHandle::isAlive).orElse(false);
      throw new IOException("log ring " + path + " already has a " + (writer ? "writer" : "reader")
          + " (pid " + holder + (alive ? "" : ", no longer running") + "); one process "
          + (writer ? "writes" : "reads") + " a ring");
    }
    if (writer) {
      writerClaimed = true;
    } else {
      readerClaimed = true;
    }
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("log ring " + path + " is closed");
    }
  }

  private static long deadline(Duration timeout) {
    // Capped at about 73 years so that now + t cannot overflow.
    long t = timeout.isNegative() ? 0 : timeout.compareTo(MAX_WAIT) > 0 ? MAX_WAIT.toNanos()
        : timeout.toNanos();
    return System.nanoTime() + t;
  }
}
