package org.qemuft.controller.channel;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One TCP connection of a {@link LogChannel}, from the handshake to its end. The thread that runs
 * the handshake stays its reader until the connection ends; writes from any thread go through one
 * lock, so frames never interleave and sequence numbers follow the order on the wire.
 */
final class Connection {
  private static final Logger LOG = LoggerFactory.getLogger(LogChannel.class);
  private static final int READ_BUFFER = 64 << 10;
  /** Writes go out in pieces of this size so that a stalled peer shows as a stall, not a slow write. */
  private static final int WRITE_CHUNK = 64 << 10;

  private final LogChannel channel;
  private final Socket socket;
  private final InputStream in;
  private final OutputStream out;
  private final ChannelSettings s;
  private final int myRole;
  private final int peerRole;
  final String peer;

  // Reader state: touched only by the reader thread.
  private final byte[] rbuf = new byte[READ_BUFFER];
  private int rpos;
  private int rlim;
  private long bytesIn;
  private final byte[] header = new byte[Wire.HEADER];
  private byte[] payload = new byte[256];
  private int payloadLen;
  private long expectSeq;
  private long lastReceivedNanos;
  private boolean silenceReported;
  private long handshakeDeadline;
  private long closeDeadline = Long.MAX_VALUE;
  private LogCompression.Decompressor decompressor;
  private byte[] raw = new byte[256];
  private long lastAckReceived = -1;
  private byte[] primaryNonce;
  private byte[] backupNonce;

  // Writer state: under writeLock.
  private final ReentrantLock writeLock = new ReentrantLock();
  private byte[] wbuf = new byte[512];
  private long sendSeq;
  private LogCompression.Compressor compressor;
  private long lastAckSent = -1;
  private boolean ended;

  private volatile boolean authenticated;
  /** Primary: the end of the LOG handed to the socket (set before the write: an ACK may beat it). */
  private volatile long sentEnd;
  /** Backup: where the next LOG frame must start. */
  private volatile long receiveEnd;
  private long resumeOffset;
  private volatile boolean writing;
  private volatile long lastProgressNanos;
  private volatile int writingBytes;
  private volatile long lastSentNanos;
  private volatile String endReason;
  private volatile String closeReason;
  private volatile boolean goodbyeSent;
  private volatile boolean goodbyeReceived;
  private volatile boolean resetByPeer;
  private volatile Thread reader;
  private volatile boolean finished;

  Connection(LogChannel channel, Socket socket, boolean primary) throws IOException {
    this.channel = channel;
    this.socket = socket;
    this.s = channel.settings;
    this.myRole = primary ? Handshake.ROLE_PRIMARY : Handshake.ROLE_BACKUP;
    this.peerRole = primary ? Handshake.ROLE_BACKUP : Handshake.ROLE_PRIMARY;
    this.peer = socket.getInetAddress().getHostAddress() + ":" + socket.getPort();
    socket.setTcpNoDelay(true); // acks gate the guest's network output: no Nagle delay
    socket.setSoTimeout((int) channel.tickMillis);
    this.in = socket.getInputStream();
    this.out = socket.getOutputStream();
    long now = System.nanoTime();
    this.handshakeDeadline = now + s.handshakeTimeout().toNanos();
    this.lastSentNanos = now;
  }

  private String peerName() {
    return Handshake.roleName(peerRole);
  }

  /** "the backup at 10.0.0.2:7700", for messages. */
  String describePeer() {
    return "the " + (authenticated ? "" : "would-be ") + peerName() + " at " + peer;
  }

  long resumeOffset() {
    return resumeOffset;
  }

  /** Primary: where the next LOG frame on this connection must start. */
  long nextSendOffset() {
    return sentEnd;
  }

  boolean authenticated() {
    return authenticated;
  }

  Thread reader() {
    return reader;
  }

  boolean finished() {
    return finished;
  }

  // ---------------------------------------------------------------- handshake

  /** Primary side: HELLO both ways, our proof, the backup's proof. */
  void handshakeAsPrimary() throws IOException {
    reader = Thread.currentThread();
    primaryNonce = Handshake.nonce();
    sendHandshake(Wire.HELLO, 0, Handshake.hello(myRole, s, primaryNonce));
    Handshake.Hello hello = readHello();
    backupNonce = hello.nonce();
    byte[] mine = Handshake.proof(s.secret(), myRole, s.pairIdBytes(), s.epoch(), primaryNonce, backupNonce, 0);
    sendHandshake(Wire.AUTH, 0, mine);
    readHandshakeFrame(Wire.AUTH, "its proof");
    long resume = Wire.offset(header);
    if (resume < 0) {
      throw new ChannelAuthException("its AUTH gives a negative resume offset " + resume);
    }
    byte[] expected = Handshake.proof(s.secret(), peerRole, s.pairIdBytes(), s.epoch(), primaryNonce, backupNonce, resume);
    if (!Handshake.proofMatches(expected, payload, payloadLen)) {
      throw new ChannelAuthException("its proof does not match: the two hosts have different secrets, or it"
          + " replayed or forged a handshake; check pair.secretFile on both hosts");
    }
    resumeOffset = resume;
    sentEnd = resume;
    authenticated = true;
  }

  /** Backup side, first half: HELLO both ways, the primary's proof checked. */
  void verifyPrimary() throws IOException {
    reader = Thread.currentThread();
    backupNonce = Handshake.nonce();
    sendHandshake(Wire.HELLO, 0, Handshake.hello(myRole, s, backupNonce));
    Handshake.Hello hello = readHello();
    primaryNonce = hello.nonce();
    readHandshakeFrame(Wire.AUTH, "its proof");
    if (Wire.offset(header) != 0) {
      throw new ChannelAuthException("its AUTH has offset " + Wire.offset(header) + " where 0 belongs");
    }
    byte[] expected = Handshake.proof(s.secret(), peerRole, s.pairIdBytes(), s.epoch(), primaryNonce, backupNonce, 0);
    if (!Handshake.proofMatches(expected, payload, payloadLen)) {
      throw new ChannelAuthException("its proof does not match: the two hosts have different secrets, or it"
          + " replayed a captured or forged proof; check pair.secretFile on both hosts");
    }
  }

  /** Backup side, second half: our proof and where the primary is to resume. */
  void completeAsBackup(long resume) throws IOException {
    if (resume < 0) {
      throw new IllegalStateException("resume offset " + resume + " is negative");
    }
    byte[] mine = Handshake.proof(s.secret(), myRole, s.pairIdBytes(), s.epoch(), primaryNonce, backupNonce, resume);
    resumeOffset = resume;
    receiveEnd = resume;
    sendHandshake(Wire.AUTH, resume, mine);
    authenticated = true;
  }

  private Handshake.Hello readHello() throws IOException {
    readHandshakeFrame(Wire.HELLO, "its HELLO");
    if (Wire.offset(header) != 0) {
      throw new ChannelAuthException("its HELLO has offset " + Wire.offset(header) + " where 0 belongs");
    }
    Handshake.Hello h = Handshake.parseHello(payload, payloadLen);
    if (h.role() != peerRole) {
      throw new ChannelAuthException("it says it is the " + Handshake.roleName(h.role()) + "; only a " + peerName()
          + " may connect to a " + Handshake.roleName(myRole)
          + (h.role() == myRole ? " (two " + (myRole == Handshake.ROLE_PRIMARY ? "primaries" : "backups")
              + "? check both hosts' pair file)" : ""));
    }
    if (!h.pairId().equals(s.pairId())) {
      throw new ChannelAuthException("it serves pair '" + h.pairId() + "', this controller serves pair '" + s.pairId()
          + "' (wrong address in the pair file?)");
    }
    if (h.epoch() != s.epoch()) {
      throw new ChannelAuthException("it is in epoch " + h.epoch() + ", this controller is in epoch " + s.epoch()
          + ": one of the two is stale (every go-live starts a new epoch)");
    }
    return h;
  }

  /** Reads one handshake frame of the given type, translating everything else into an auth failure. */
  private void readHandshakeFrame(int type, String what) throws IOException {
    int got;
    try {
      got = readFrame(Wire.MAX_HANDSHAKE_PAYLOAD);
    } catch (ChannelProtocolException e) {
      throw new ChannelAuthException("it sent " + bytesIn + " bytes that are not a valid handshake: " + e.getMessage());
    } catch (EOFException e) {
      if (bytesIn == 0 && type == Wire.HELLO) {
        throw new ChannelAuthException("it closed the connection without saying anything");
      }
      boolean afterOurProof = myRole == Handshake.ROLE_PRIMARY && type == Wire.AUTH;
      throw new ChannelAuthException("it closed the connection while we waited for " + what
          + (afterOurProof ? ": it refused us (wrong secret, pair id or epoch on one side? its log says which)" : ""));
    }
    if (got != type) {
      throw new ChannelAuthException("it sent " + Wire.withArticle(got) + " frame where " + what + " ("
          + Wire.typeName(type) + ") belongs: nothing but the handshake is accepted before authentication");
    }
  }

  private void sendHandshake(int type, long offset, byte[] p) throws IOException {
    writeLock.lock();
    try {
      ensureW(Wire.HEADER + p.length);
      System.arraycopy(p, 0, wbuf, Wire.HEADER, p.length);
      writeFrame(type, 0, offset, p.length);
    } finally {
      writeLock.unlock();
    }
  }

  // ---------------------------------------------------------------- reading

  /** Reads one whole, checked frame into {@code header} and {@code payload}; returns its type. */
  private int readFrame(int maxPayload) throws IOException {
    // The magic first: a peer that is not speaking this protocol is told off at once, even if it
    // sent fewer bytes than a header.
    readFully(header, 0, 4);
    if (Wire.getInt(header, 0) != Wire.MAGIC) {
      throw new ChannelProtocolException(Wire.checkHeader(header, maxPayload));
    }
    readFully(header, 4, Wire.HEADER - 4);
    String bad = Wire.checkHeader(header, maxPayload);
    if (bad != null) {
      throw new ChannelProtocolException(bad);
    }
    int len = Wire.length(header);
    if (payload.length < len) {
      payload = new byte[Math.max(len, Math.min(payload.length * 2, Wire.MAX_PAYLOAD))];
    }
    readFully(payload, 0, len);
    int crc = Wire.crc(header, payload, 0, len);
    int type = Wire.type(header);
    if (crc != Wire.storedCrc(header)) {
      throw new ChannelProtocolException(String.format("CRC32C mismatch in a %s frame, seq %d,"
          + " %d bytes: computed %08x, the frame carries %08x; it was damaged on the way",
          Wire.typeName(type), Wire.seq(header), len, crc, Wire.storedCrc(header)));
    }
    long seq = Wire.seq(header);
    if (seq != expectSeq) {
      throw new ChannelProtocolException("sequence gap: expected frame " + expectSeq + ", got " + seq + " ("
          + Wire.typeName(type) + "): a frame was lost, repeated or reordered");
    }
    expectSeq++;
    payloadLen = len;
    return type;
  }

  private void readFully(byte[] dst, int from, int n) throws IOException {
    int done = from;
    n += from;
    while (done < n) {
      if (rpos == rlim) {
        fill();
      }
      int k = Math.min(n - done, rlim - rpos);
      System.arraycopy(rbuf, rpos, dst, done, k);
      rpos += k;
      done += k;
    }
  }

  private void fill() throws IOException {
    while (true) {
      int k;
      try {
        k = in.read(rbuf, 0, rbuf.length);
      } catch (SocketTimeoutException e) {
        checkTime();
        continue;
      }
      // Also when bytes arrive: a peer that trickles a byte now and then must not stretch the
      // handshake or hide that no whole frame has come for the peer timeout.
      checkTime();
      if (k < 0) {
        throw new EOFException("end of stream");
      }
      if (k > 0) {
        rpos = 0;
        rlim = k;
        bytesIn += k;
        return;
      }
    }
  }

  /** Called by the reader at every read and every tick without data: handshake deadline, closing, silence. */
  private void checkTime() throws IOException {
    long now = System.nanoTime();
    if (!authenticated) {
      if (now - handshakeDeadline > 0) {
        throw new ChannelAuthException(bytesIn == 0
            ? "it said nothing within the handshake timeout (" + s.handshakeTimeout().toMillis() + " ms)"
            : "it did not complete the handshake within " + s.handshakeTimeout().toMillis() + " ms (it sent "
                + bytesIn + " bytes)");
      }
      return;
    }
    if (closeReason != null) {
      if (now - closeDeadline > 0) {
        throw new EOFException("the peer did not close its side in time");
      }
      return;
    }
    long silent = now - lastReceivedNanos;
    if (!silenceReported && silent >= s.peerTimeout().toNanos()) {
      silenceReported = true;
      LOG.warn("channel: {} has sent nothing for {} ms (peer timeout {} ms)", describePeer(),
          TimeUnit.NANOSECONDS.toMillis(silent), s.peerTimeout().toMillis());
      try {
        channel.listener.onPeerSilent(Duration.ofNanos(silent));
      } catch (RuntimeException e) {
        throw new ListenerFailure("onPeerSilent", e);
      }
    }
  }

  // ---------------------------------------------------------------- connected

  /**
   * Delivers onConnected, then every frame until the connection ends, then onDisconnected. Runs
   * on the thread that did the handshake.
   */
  void runConnected() {
    reader = Thread.currentThread();
    lastReceivedNanos = System.nanoTime();
    String reason;
    boolean resetHere = false;
    try {
      try {
        channel.listener.onConnected(new PeerInfo(peerName(), peer, resumeOffset));
      } catch (RuntimeException e) {
        throw new ListenerFailure("onConnected", e);
      }
      reason = readUntilEnd();
    } catch (ChannelProtocolException e) {
      reason = "reset: " + e.getMessage();
      resetHere = true;
      LOG.warn("channel: {} sent a bad frame: {}; resetting the connection (nothing from that frame was"
          + " delivered{})", describePeer(), e.getMessage(),
          myRole == Handshake.ROLE_PRIMARY ? "; the primary redials and resumes where the backup says" : "");
      sayGoodbyeIfFree("reset: " + e.getMessage(), Wire.FLAG_RESET);
    } catch (ListenerFailure e) {
      reason = "reset: the controller's " + e.callback + " failed: " + e.getCause();
      resetHere = true;
      LOG.error("channel: the controller's {} failed; resetting the connection to {}", e.callback, describePeer(), e.getCause());
      sayGoodbyeIfFree(reason, Wire.FLAG_RESET);
    } catch (IOException e) {
      if (closeReason != null) {
        reason = "closed by this controller: " + closeReason;
      } else if (endReason != null) {
        reason = endReason;
      } else if (e instanceof EOFException) {
        reason = "the " + peerName() + " closed the connection without a goodbye";
      } else {
        reason = "connection lost: " + e.getMessage();
      }
    }
    end(reason, resetHere);
  }

  /** Thrown by a listener callback; carried out of the read loop to reset the connection. */
  private static final class ListenerFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final String callback;

    ListenerFailure(String callback, RuntimeException cause) {
      super(cause);
      this.callback = callback;
    }
  }

  private String readUntilEnd() throws IOException {
    while (true) {
      int type = readFrame(Wire.MAX_PAYLOAD);
      long now = System.nanoTime();
      lastReceivedNanos = now;
      silenceReported = false;
      channel.frameReceived(now);
      switch (type) {
        case Wire.LOG -> onLogFrame();
        case Wire.ACK -> onAckFrame();
        case Wire.HEARTBEAT -> {
          if (payloadLen != 0 || Wire.offset(header) != 0) {
            throw new ChannelProtocolException("HEARTBEAT with " + payloadLen + " bytes of payload and offset "
                + Wire.offset(header) + "; both must be 0");
          }
        }
        case Wire.GOODBYE -> {
          goodbyeReceived = true;
          resetByPeer = (Wire.flags(header) & Wire.FLAG_RESET) != 0;
          String words = Handshake.printable(payload, Math.min(payloadLen, Wire.MAX_REASON));
          LOG.info("channel: {} said goodbye: {}", describePeer(), words);
          if (closeReason != null) {
            return "closed by this controller: " + closeReason;
          }
          return "the " + peerName() + " said goodbye: " + words;
        }
        default -> throw new ChannelProtocolException("it sent " + Wire.withArticle(type) + " frame after authentication");
      }
    }
  }

  private void onLogFrame() throws ChannelProtocolException {
    if (myRole != Handshake.ROLE_BACKUP) {
      throw new ChannelProtocolException("the backup sent a LOG frame; only the primary sends log");
    }
    long off = Wire.offset(header);
    long expected = receiveEnd;
    if (off != expected) {
      throw new ChannelProtocolException(off > expected
          ? "offset gap: a LOG frame starts at " + off + " but the stream so far ends at " + expected + " ("
              + (off - expected) + " bytes missing)"
          : "offset overlap: a LOG frame starts at " + off + ", before the end of the stream so far (" + expected
              + "): it repeats " + (expected - off) + " bytes");
    }
    byte[] data;
    int n;
    if ((Wire.flags(header) & Wire.FLAG_COMPRESSED) != 0) {
      if (decompressor == null) {
        decompressor = new LogCompression.Decompressor();
      }
      raw = decompressor.decompress(payload, payloadLen, raw);
      data = raw;
      n = Wire.getInt(payload, 0);
    } else {
      data = payload;
      n = payloadLen;
      if (n == 0 || n > Wire.MAX_LOG_BYTES) {
        throw new ChannelProtocolException("LOG frame with " + n + " bytes of events; 1.." + Wire.MAX_LOG_BYTES
            + " are allowed");
      }
    }
    if (off + n < off) {
      throw new ChannelProtocolException("LOG frame at offset " + off + " with " + n + " bytes overflows the stream offset");
    }
    receiveEnd = off + n;
    channel.logReceived(n, Wire.HEADER + payloadLen);
    if (closeReason == null) {
      try {
        channel.listener.onLog(off, data, n);
      } catch (RuntimeException e) {
        throw new ListenerFailure("onLog", e);
      }
    }
  }

  private void onAckFrame() throws ChannelProtocolException {
    if (myRole != Handshake.ROLE_PRIMARY) {
      throw new ChannelProtocolException("the primary sent an ACK; only the backup acknowledges");
    }
    if (payloadLen != Wire.ACK_PAYLOAD) {
      throw new ChannelProtocolException("ACK with " + payloadLen + " bytes of payload; " + Wire.ACK_PAYLOAD + " belong");
    }
    long held = Wire.offset(header);
    long replayed = Wire.getLong(payload, 0);
    long icount = Wire.getLong(payload, 8);
    long sent = sentEnd;
    if (held > sent || held < 0) {
      throw new ChannelProtocolException("ACK holds up to " + held + ", but this connection has sent the stream"
          + " only up to " + sent);
    }
    if (held < lastAckReceived) {
      throw new ChannelProtocolException("ACK went backwards: held up to " + held + " after " + lastAckReceived);
    }
    if (replayed < 0 || replayed > held || icount < 0) {
      throw new ChannelProtocolException("ACK says replayed up to " + replayed + " (icount " + icount
          + ") of a stream held up to " + held);
    }
    lastAckReceived = held;
    if (closeReason == null) {
      try {
        channel.listener.onAck(held, replayed, icount);
      } catch (RuntimeException e) {
        throw new ListenerFailure("onAck", e);
      }
    }
  }

  /** Ends the connection: closes the socket, frees the codecs, tells the channel and the listener. */
  private void end(String reason, boolean resetHere) {
    fail(reason);
    writeLock.lock();
    try {
      ended = true;
      if (compressor != null) {
        compressor.close();
        compressor = null;
      }
    } finally {
      writeLock.unlock();
    }
    if (decompressor != null) {
      decompressor.close();
      decompressor = null;
    }
    boolean reset = resetHere || resetByPeer || (!goodbyeSent && !goodbyeReceived);
    channel.connectionEnded(this, reset);
    if (reset) {
      LOG.warn("channel: disconnected from {}: {}", describePeer(), reason);
    } else {
      LOG.info("channel: disconnected from {}: {}", describePeer(), reason);
    }
    try {
      channel.listener.onDisconnected(reason);
    } catch (RuntimeException e) {
      LOG.error("channel: the controller's onDisconnected failed", e);
    }
    finished = true;
  }

  /** Ends a connection that never authenticated (the caller has logged why). */
  void abandon() {
    writeLock.lock();
    try {
      ended = true;
    } finally {
      writeLock.unlock();
    }
    closeSocket();
  }

  /** Makes the reader stop: records why (the first reason wins) and closes the socket. */
  void fail(String reason) {
    if (endReason == null) {
      endReason = reason;
    }
    closeSocket();
  }

  private void closeSocket() {
    try {
      socket.close();
    } catch (IOException e) {
      LOG.debug("channel: closing the socket to {}: {}", peer, e.toString());
    }
  }

  /**
   * Local close: GOODBYE, half-close, and wait (at most {@code linger}) for the peer to close its
   * side, so the GOODBYE is read rather than lost to a TCP reset; then the socket is closed.
   */
  void closeGracefully(String why, Duration linger) {
    closeReason = why;
    closeDeadline = System.nanoTime() + linger.toNanos();
    boolean sent = sayGoodbye(why, 0, Duration.ofMillis(Math.min(linger.toMillis(), 1000)));
    if (Thread.currentThread() == reader) {
      // Called from a callback: when it returns, the read loop drains until the peer closes
      // (or the linger ends) and then ends the connection.
      if (!sent) {
        fail("closed by this controller: " + why);
      }
      return;
    }
    Thread r = reader;
    if (sent && r != null) {
      try {
        r.join(linger.toMillis() + 1);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    fail("closed by this controller: " + why);
  }

  private void sayGoodbyeIfFree(String reason, int flags) {
    sayGoodbye(reason, flags, Duration.ZERO);
  }

  /** Sends GOODBYE and half-closes if the write lock comes free within {@code wait}. */
  private boolean sayGoodbye(String reason, int flags, Duration wait) {
    boolean locked;
    try {
      locked = writeLock.tryLock(wait.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
    if (!locked) {
      return false;
    }
    try {
      if (ended || goodbyeSent) {
        return false;
      }
      byte[] words = reason.getBytes(StandardCharsets.UTF_8);
      int n = Math.min(words.length, Wire.MAX_REASON);
      ensureW(Wire.HEADER + n);
      System.arraycopy(words, 0, wbuf, Wire.HEADER, n);
      writeFrame(Wire.GOODBYE, flags, 0, n);
      goodbyeSent = true;
      socket.shutdownOutput();
      return true;
    } catch (IOException e) {
      LOG.debug("channel: could not say goodbye to {}: {}", peer, e.toString());
      return false;
    } finally {
      writeLock.unlock();
    }
  }

  // ---------------------------------------------------------------- writing

  /** Primary: one LOG frame. */
  void sendLog(long offset, byte[] events, int off, int len) throws IOException, InterruptedException {
    writeLock.lockInterruptibly();
    try {
      checkOpen();
      if (offset != sentEnd) {
        throw new IOException("LOG at offset " + offset + ", but this connection to " + describePeer()
            + " continues at " + sentEnd + " (the backup resumed at " + resumeOffset
            + "): after a reconnect, ship from the resumeOffset of the latest onConnected");
      }
      int flags;
      int plen;
      if (s.compression()) {
        if (compressor == null) {
          compressor = new LogCompression.Compressor();
        }
        int[] produced = new int[1];
        wbuf = compressor.compress(events, off, len, wbuf, Wire.HEADER, produced);
        plen = produced[0];
        flags = Wire.FLAG_COMPRESSED;
      } else {
        ensureW(Wire.HEADER + len);
        System.arraycopy(events, off, wbuf, Wire.HEADER, len);
        plen = len;
        flags = 0;
      }
      sentEnd = offset + len; // before the write: the backup may ack before write() returns
      try {
        writeFrame(Wire.LOG, flags, offset, plen);
      } catch (IOException e) {
        throw failed("LOG", e);
      }
      channel.logSent(len, Wire.HEADER + plen);
    } finally {
      writeLock.unlock();
    }
  }

  /** Backup: one ACK. */
  void sendAck(long held, long replayed, long icount) throws IOException {
    writeLock.lock();
    try {
      checkOpen();
      long have = receiveEnd;
      if (held > have) {
        throw new IllegalArgumentException("ack up to " + held + ", but this connection has received the stream"
            + " only up to " + have);
      }
      if (held < lastAckSent) {
        throw new IllegalArgumentException("ack up to " + held + " after an ack up to " + lastAckSent
            + " on the same connection: acks must not go backwards");
      }
      ensureW(Wire.HEADER + Wire.ACK_PAYLOAD);
      Wire.putLong(wbuf, Wire.HEADER, replayed);
      Wire.putLong(wbuf, Wire.HEADER + 8, icount);
      try {
        writeFrame(Wire.ACK, 0, held, Wire.ACK_PAYLOAD);
      } catch (IOException e) {
        throw failed("ACK", e);
      }
      lastAckSent = held;
    } finally {
      writeLock.unlock();
    }
  }

  /** A HEARTBEAT if nothing else is being written (a write in progress is as good). */
  void heartbeatIfFree() {
    if (!writeLock.tryLock()) {
      return;
    }
    try {
      if (ended || goodbyeSent) {
        return;
      }
      writeFrame(Wire.HEARTBEAT, 0, 0, 0);
    } catch (IOException e) {
      fail("connection lost: sending a heartbeat failed: " + e.getMessage());
    } finally {
      writeLock.unlock();
    }
  }

  long lastSentNanos() {
    return lastSentNanos;
  }

  /** How long the current write has made no progress (0 if none is in progress). */
  long stalledNanos(long now) {
    return writing ? now - lastProgressNanos : 0;
  }

  int writingBytes() {
    return writingBytes;
  }

  private void checkOpen() throws IOException {
    if (ended || goodbyeSent || endReason != null) {
      String why = endReason != null ? endReason : closeReason != null ? "closed by this controller: " + closeReason : "ended";
      throw new IOException("the connection to " + describePeer() + " has ended (" + why + ")");
    }
  }

  private IOException failed(String what, IOException e) {
    String why = endReason != null ? endReason : "connection lost: " + e.getMessage();
    fail(why);
    return new IOException("sending " + what + " to " + describePeer() + " failed: " + why, e);
  }

  private void ensureW(int n) {
    if (wbuf.length < n) {
      wbuf = LogCompression.grow(wbuf, n);
    }
  }

  /** Writes the frame whose payload is in {@code wbuf[HEADER..]}. Caller holds the write lock. */
  private void writeFrame(int type, int flags, long offset, int plen) throws IOException {
    Wire.header(wbuf, type, flags, sendSeq, offset, plen);
    int total = Wire.HEADER + plen;
    writingBytes = total;
    lastProgressNanos = System.nanoTime();
    writing = true;
    try {
      for (int pos = 0; pos < total; ) {
        int n = Math.min(WRITE_CHUNK, total - pos);
        out.write(wbuf, pos, n);
        pos += n;
        lastProgressNanos = System.nanoTime();
      }
    } finally {
      writing = false;
    }
    sendSeq++;
    lastSentNanos = System.nanoTime();
    if (authenticated) {
      channel.frameSent();
    }
  }
}
