package org.qemuft.nativeio;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A TAP network device: Ethernet frames in and out of the host's network stack (qemu-ft's
 * uplink to the LAN). Opens the device by name, creating it if it does not exist (as root).
 *
 * <p>One thread may {@link #read} while another {@link #write}s. {@link #close} may be called
 * from any thread; a {@code read} in progress then returns -1 within about 100 ms.
 */
public final class Tap implements AutoCloseable {
  /** The largest frame a TAP hands over without offloads: 64 KiB covers any MTU. */
  public static final int MAX_FRAME = 65536;

  private static final int O_RDWR = 2;
  private static final int O_CLOEXEC = 0x80000;
  private static final long TUNSETIFF = 0x400454caL;
  private static final short IFF_TAP = 0x0002;
  private static final short IFF_NO_PI = 0x1000;
  private static final short POLLIN = 0x1;
  private static final int EINTR = 4;
  private static final int EAGAIN = 11;
  private static final int IFNAMSIZ = 16;
  private static final int POLL_SLICE_MS = 100;

  private static final MethodHandle OPEN = Libc.downcall("open",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT),
      Libc.ERRNO, Linker.Option.firstVariadicArg(2));
  private static final MethodHandle IOCTL = Libc.downcall("ioctl",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS),
      Libc.ERRNO, Linker.Option.firstVariadicArg(2));
  private static final MethodHandle READ = Libc.downcall("read",
      FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG),
      Libc.ERRNO);
  private static final MethodHandle WRITE = Libc.downcall("write",
      FunctionDescriptor.of(ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG),
      Libc.ERRNO);
  private static final MethodHandle POLL = Libc.downcall("poll",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT),
      Libc.ERRNO);
  private static final MethodHandle CLOSE = Libc.downcall("close",
      FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));

  private final String name;
  private final int fd;
  private final Arena arena = Arena.ofShared();
  private final MemorySegment readBuf = arena.allocate(MAX_FRAME);
  private final MemorySegment writeBuf = arena.allocate(MAX_FRAME);
  private final MemorySegment readState = arena.allocate(Libc.CALL_STATE);
  private final MemorySegment writeState = arena.allocate(Libc.CALL_STATE);
  private final MemorySegment pollFd = arena.allocate(8);
  private final ReentrantLock reading = new ReentrantLock();
  private final ReentrantLock writing = new ReentrantLock();
  private volatile boolean closed;

  private Tap(String name, int fd) {
    this.name = name;
    this.fd = fd;
    pollFd.set(ValueLayout.JAVA_INT, 0, fd);
    pollFd.set(ValueLayout.JAVA_SHORT, 4, POLLIN);
  }

  /**
   * Attaches to the TAP device {@code name} (created if missing; needs CAP_NET_ADMIN).
   *
   * @throws IOException naming the device and the kernel's reason
   */
  public static Tap open(String name) throws IOException {
    byte[] nameBytes = name.getBytes(StandardCharsets.US_ASCII);
    if (nameBytes.length == 0 || nameBytes.length >= IFNAMSIZ) {
      throw new IOException("TAP device name '" + name + "' must be 1-15 characters");
    }
    try (Arena tmp = Arena.ofConfined()) {
      MemorySegment state = tmp.allocate(Libc.CALL_STATE);
      int fd = (int) OPEN.invokeExact(state, tmp.allocateFrom("/dev/net/tun"), O_RDWR | O_CLOEXEC, 0);
      if (fd < 0) {
        throw new IOException("cannot open /dev/net/tun for TAP device " + name + ": " + Libc.errnoText(state)
            + " (needs root or CAP_NET_ADMIN, and the tun module)");
      }
      MemorySegment ifreq = tmp.allocate(40);
      ifreq.copyFrom(MemorySegment.ofArray(nameBytes));
      ifreq.set(ValueLayout.JAVA_SHORT, IFNAMSIZ, (short) (IFF_TAP | IFF_NO_PI));
      int rc = (int) IOCTL.invokeExact(state, fd, TUNSETIFF, ifreq);
      if (rc < 0) {
        String why = Libc.errnoText(state);
        int ignored = (int) CLOSE.invokeExact(fd);
        throw new IOException("cannot attach to TAP device " + name + ": " + why
            + " (is it a TUN device, or owned by another user?)");
      }
      return new Tap(name, fd);
    } catch (IOException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call failed opening TAP " + name, t);
    }
  }

  public String name() {
    return name;
  }

  /**
   * Reads one frame into {@code buf} (at least {@link #MAX_FRAME} long to never truncate).
   *
   * @return the frame's length; 0 if none arrived within {@code timeout}; -1 once closed
   * @throws IOException naming the device and the kernel's reason
   */
  public int read(byte[] buf, Duration timeout) throws IOException {
    long deadline = System.nanoTime() + timeout.toNanos();
    reading.lock();
    try {
      while (!closed) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        int slice = (int) Math.max(0, Math.min(POLL_SLICE_MS, left));
        int ready = (int) POLL.invokeExact(readState, pollFd, 1L, slice);
        if (ready < 0) {
          if (Libc.errno(readState) == EINTR) {
            continue;
          }
          throw new IOException("poll on TAP " + name + " failed: " + Libc.errnoText(readState));
        }
        if (ready == 0) {
          if (left <= 0) {
            return 0;
          }
          continue;
        }
        long n = (long) READ.invokeExact(readState, fd, readBuf, (long) MAX_FRAME);
        if (n < 0) {
          int e = Libc.errno(readState);
          if (e == EINTR || e == EAGAIN) {
            continue;
          }
          throw new IOException("reading TAP " + name + " failed: " + Libc.errnoText(readState));
        }
        int len = (int) Math.min(n, buf.length);
        MemorySegment.copy(readBuf, ValueLayout.JAVA_BYTE, 0, buf, 0, len);
        return len;
      }
      return -1;
    } catch (IOException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call failed reading TAP " + name, t);
    } finally {
      reading.unlock();
    }
  }

  /**
   * Writes one frame to the device (the host's network stack receives it).
   *
   * @throws IOException naming the device and the kernel's reason, or if closed
   */
  public void write(byte[] frame, int off, int len) throws IOException {
    if (len > MAX_FRAME) {
      throw new IOException("frame of " + len + " bytes is larger than a TAP frame can be");
    }
    writing.lock();
    try {
      if (closed) {
        throw new IOException("TAP " + name + " is closed");
      }
      MemorySegment.copy(frame, off, writeBuf, ValueLayout.JAVA_BYTE, 0, len);
      while (true) {
        long n = (long) WRITE.invokeExact(writeState, fd, writeBuf, (long) len);
        if (n >= 0) {
          return; // a TAP write takes the whole frame or fails
        }
        if (Libc.errno(writeState) != EINTR) {
          throw new IOException("writing a " + len + "-byte frame to TAP " + name + " failed: "
              + Libc.errnoText(writeState));
        }
      }
    } catch (IOException e) {
      throw e;
    } catch (Throwable t) {
      throw new IllegalStateException("native call failed writing TAP " + name, t);
    } finally {
      writing.unlock();
    }
  }

  /** Detaches from the device; a device this call created disappears with it. */
  @Override
  public void close() {
    closed = true;
    reading.lock();
    writing.lock();
    try {
      if (arena.scope().isAlive()) {
        int ignored = (int) CLOSE.invokeExact(fd);
        arena.close();
      }
    } catch (Throwable t) {
      throw new IllegalStateException("native call failed closing TAP " + name, t);
    } finally {
      writing.unlock();
      reading.unlock();
    }
  }
}
