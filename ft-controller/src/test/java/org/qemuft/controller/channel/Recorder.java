package org.qemuft.controller.channel;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * A listener that records every callback, and on the backup side keeps the stream it was given
 * (its contiguous end is the resume offset) and optionally acks each LOG at once.
 */
class Recorder implements ChannelListener {
  static final Duration WAIT = Duration.ofSeconds(20);

  sealed interface Event permits Connected, Log, Ack, Silent, Disconnected, AuthFailure {}

  record Connected(PeerInfo peer) implements Event {}

  record Log(long offset, int len) implements Event {}

  record Ack(long held, long replayed, long icount) implements Event {}

  record Silent(Duration silentFor) implements Event {}

  record Disconnected(String reason) implements Event {}

  record AuthFailure(String peer, String reason) implements Event {}

  private final List<Event> events = new ArrayList<>();
  private final ByteArrayOutputStream stream = new ByteArrayOutputStream();
  private final List<String> violations = new ArrayList<>();
  private final List<Thread> callbackThreads = new ArrayList<>();
  private int concurrent;
  volatile LogChannel channel;
  volatile boolean autoAck;

  private void add(Event e) {
    synchronized (events) {
      events.add(e);
      events.notifyAll();
    }
  }

  private void enter(boolean checkConcurrency) {
    synchronized (violations) {
      if (checkConcurrency && ++concurrent > 1) {
        violations.add("two callbacks ran at once");
      }
      callbackThreads.add(Thread.currentThread());
    }
  }

  private void leave(boolean checkConcurrency) {
    synchronized (violations) {
      if (checkConcurrency) {
        concurrent--;
      }
    }
  }

  @Override
  public void onConnected(PeerInfo peer) {
    enter(true);
    add(new Connected(peer));
    leave(true);
  }

  @Override
  public void onLog(long offset, byte[] events, int len) {
    enter(true);
    try {
      long end;
      synchronized (stream) {
        if (offset != stream.size()) {
          violations.add("LOG at " + offset + " but the stream ends at " + stream.size());
        }
        stream.write(events, 0, len);
        end = stream.size();
      }
      add(new Log(offset, len));
      if (autoAck) {
        try {
          channel.sendAck(end, end / 2, end * 3);
        } catch (IOException e) {
          // the connection ended; the next one resumes
        }
      }
    } finally {
      leave(true);
    }
  }

  @Override
  public void onAck(long heldUpTo, long replayedUpTo, long replayIcount) {
    enter(true);
    add(new Ack(heldUpTo, replayedUpTo, replayIcount));
    leave(true);
  }

  @Override
  public void onPeerSilent(Duration silentFor) {
    enter(true);
    add(new Silent(silentFor));
    leave(true);
  }

  @Override
  public void onDisconnected(String reason) {
    enter(true);
    add(new Disconnected(reason));
    leave(true);
  }

  @Override
  public void onAuthFailure(String peer, String reason) {
    enter(false);
    add(new AuthFailure(peer, reason));
    leave(false);
  }

  /** The backup's contiguous end: its resume offset. */
  long held() {
    synchronized (stream) {
      return stream.size();
    }
  }

  byte[] stream() {
    synchronized (stream) {
      return stream.toByteArray();
    }
  }

  /** Drops the stream's tail beyond {@code end}, as a backup that lost part of its buffer would. */
  void truncate(int end) {
    synchronized (stream) {
      byte[] keep = java.util.Arrays.copyOf(stream.toByteArray(), end);
      stream.reset();
      stream.writeBytes(keep);
    }
  }

  List<String> violations() {
    synchronized (violations) {
      return List.copyOf(violations);
    }
  }

  List<Event> events() {
    synchronized (events) {
      return List.copyOf(events);
    }
  }

  <T extends Event> List<T> all(Class<T> type) {
    return events().stream().filter(type::isInstance).map(type::cast).toList();
  }

  /** Waits for the {@code n}-th (1-based) event of a type that matches. */
  <T extends Event> T await(Class<T> type, int n, Predicate<T> p) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    synchronized (events) {
      while (true) {
        List<T> match = events.stream().filter(type::isInstance).map(type::cast).filter(p).toList();
        if (match.size() >= n) {
          return match.get(n - 1);
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new AssertionError("no " + type.getSimpleName() + " #" + n + " within " + WAIT + "; events: " + events);
        }
        events.wait(Math.max(1, left / 1_000_000));
      }
    }
  }

  <T extends Event> T await(Class<T> type) throws InterruptedException {
    return await(type, 1, x -> true);
  }

  <T extends Event> T await(Class<T> type, Predicate<T> p) throws InterruptedException {
    return await(type, 1, p);
  }
}
