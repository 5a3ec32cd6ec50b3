import { describe, expect, it } from "vitest";
import { CUSTOM_ARCHIVE_HEADER_BYTES, customArchiveProblem, pgConnection } from "./pg-archive.js";

/** The first bytes of real archives of pg_dump 15 (`pg_dump -Fc`, and toc.dat of `-Fd`). */
const CUSTOM = Buffer.from("5047444d50010e000408010100000000", "hex");
const DIRECTORY_TOC = Buffer.from("5047444d50010e000408030100000000", "hex");

describe("customArchiveProblem", () => {
  it("takes a custom-format header, and says why anything else is not one", () => {
    expect(CUSTOM_ARCHIVE_HEADER_BYTES).toBe(11);
    expect(customArchiveProblem(CUSTOM)).toBeUndefined();
    expect(customArchiveProblem(CUSTOM.subarray(0, 11))).toBeUndefined();
    // A view into a larger buffer (a chunk of a stream) is read where it starts.
    expect(customArchiveProblem(Buffer.concat([Buffer.from("xx"), CUSTOM]).subarray(2))).toBeUndefined();
    const cases: Array<[Buffer | string, RegExp]> = [
      [Buffer.alloc(0), /^it is empty$/],
      ["--\n-- PostgreSQL database dump\n--\n", /plain SQL script/],
      ["SET statement_timeout = 0;", /plain SQL script/],
      [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0x80]), /does not start with PGDMP/],
      ["toc.dat\0\0\0\0\0\0\0\0", /does not start with PGDMP/],
      ["PGDMP", /truncated/],
      [CUSTOM.subarray(0, 10), /truncated/],
      [DIRECTORY_TOC, /tar archive/],
      [Buffer.concat([CUSTOM.subarray(0, 10), Buffer.from([5])]), /directory archive/],
      [Buffer.concat([CUSTOM.subarray(0, 10), Buffer.from([9])]), /format 9 archive/],
      [Buffer.concat([CUSTOM.subarray(0, 5), Buffer.from([2]), CUSTOM.subarray(6)]), /version 2\.14/],
    ];
    for (const [head, problem] of cases) expect(customArchiveProblem(typeof head === "string" ? Buffer.from(head, "latin1") : head), String(head)).toMatch(problem);
  });
});

describe("pgConnection", () => {
  it("never puts the password on the command line, and leaves a URL without host to libpq's defaults", () => {
    const c = pgConnection("postgresql://role%40x:s3cr%2Ft@db.internal:6543/my_db?sslmode=require");
    expect(c.args).toEqual(["--host", "db.internal", "--port", "6543", "--username", "role@x", "--no-password", "--dbname=my_db"]);
    expect(c.env).toMatchObject({ PGPASSWORD: "s3cr/t", PGSSLMODE: "require" });
    expect(c).toMatchObject({ label: "db.internal:6543/my_db", database: "my_db" });
    expect(pgConnection("postgres://127.0.0.1/shop_test").args).toEqual(["--host", "127.0.0.1", "--port", "5432", "--no-password", "--dbname=shop_test"]);
    const local = pgConnection("postgres:///shop_test");
    expect(local.args).toEqual(["--no-password", "--dbname=shop_test"]);
    expect(local.label).toBe("(local)/shop_test");
    expect(pgConnection("postgres:///x?host=/var/run/postgresql").args.slice(0, 4)).toEqual(["--host", "/var/run/postgresql", "--port", "5432"]);
    expect(pgConnection("postgres://h/we%3Dird").args.at(-1)).toBe("--dbname=dbname='we=ird'");
    expect(() => pgConnection("mysql://h/db")).toThrow(/unsupported database URL scheme 'mysql:'/);
    expect(() => pgConnection("postgres://h/")).toThrow(/names no database/);
    expect(() => pgConnection("not a url")).toThrow(/not a valid URL/);
  });
});
