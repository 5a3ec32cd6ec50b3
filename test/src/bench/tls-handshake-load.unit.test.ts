import { describe, expect, it } from "vitest";
import { parseClosedResponse, percentile } from "./tls-handshake-load.js";
import { parseSTime } from "./s-time.js";
import { parseProcStat } from "./proc-cpu.js";

const b = (s: string) => Buffer.from(s, "latin1");

describe("parseClosedResponse", () => {
  it("is complete when the body is as long as Content-Length says, and not when it is cut short", () => {
    expect(parseClosedResponse(b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"))).toEqual({ status: 200, complete: true });
    expect(parseClosedResponse(b("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel"))).toEqual({ status: 200, complete: false });
  });

  it("needs the last chunk of a chunked body", () => {
    expect(parseClosedResponse(b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))).toEqual({ status: 200, complete: true });
    expect(parseClosedResponse(b("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"))).toEqual({ status: 200, complete: false });
  });

  it("takes a body without length to run to the close, and reports other statuses as they are", () => {
    expect(parseClosedResponse(b("HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno environment"))).toEqual({ status: 404, complete: true });
  });

  it("is incomplete without a status line or the end of the header", () => {
    expect(parseClosedResponse(b(""))).toEqual({ status: 0, complete: false });
    expect(parseClosedResponse(b("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"))).toEqual({ status: 200, complete: false });
  });
});

describe("percentile", () => {
  it("is the nearest-rank value", () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 0.5)).toBe(50);
    expect(percentile(xs, 0.99)).toBe(99);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
  });
});

describe("parseSTime", () => {
  it("reads the connection count and tells new sessions from resumed ones by the progress marks", () => {
    const out = "Collecting connection statistics for 2 seconds\n****r**\n\n7 connections in 0.01s; 700.00 connections/user sec, bytes read 0\n7 connections in 3 real seconds, 0 bytes read per connection\n";
    expect(parseSTime(out)).toEqual({ connections: 7, resumed: 1, full: 6 });
  });

  it("is undefined without a connection count", () => {
    expect(parseSTime("s_time: Unknown option: -servername\n")).toBeUndefined();
  });
});

describe("parseProcStat", () => {
  it("reads utime, stime, cutime and cstime after a command name holding spaces and parentheses", () => {
    const line = "4242 (haproxy (w) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 89 10 20 0 2 0 40316 3133440 389";
    expect(parseProcStat(line)).toEqual({ utime: 1234, stime: 567, cutime: 89, cstime: 10 });
  });

  it("is undefined for something else", () => {
    expect(parseProcStat("")).toBeUndefined();
  });
});
