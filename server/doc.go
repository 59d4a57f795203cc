// Package server speaks the Postgres wire protocol (version 3.0) to psql,
// drivers and BI tools, and nothing else.
//
// The layers, in the order a connection meets them:
//
//  1. Listener (server.go): accepts TCP connections, one goroutine each, and
//     keeps the registry of running sessions that CancelRequest uses.
//  2. Start-up (conn.go): SSLRequest (TLS when configured, else a clean 'N'),
//     GSSENCRequest (refused), CancelRequest, then the StartupMessage.
//  3. Authentication (scram.go): SCRAM-SHA-256 for the single login user
//     "sluice" when a password is configured, trust otherwise (the caller
//     refuses to listen on a non-loopback address without a password).
//  4. Session (conn.go, extended.go): the simple query protocol (several
//     statements per message) and the extended protocol (Parse, Bind,
//     Describe, Execute, Close, Sync, Flush; after an error, messages up to
//     Sync are skipped). Statements are run by a Session obtained from the
//     Backend, the one interface this package needs from the executor.
//  5. Errors and notices (errors.go): every error reaching the client is
//     turned into an ErrorResponse from a *sqlerr.Error here and only here,
//     with every field it carries (SQLSTATE, detail, hint, position,
//     context, schema/table/column/type/constraint names, internal query,
//     location); notices and warnings, the same type with severity NOTICE,
//     WARNING, ..., become NoticeResponse messages, sent at once even while
//     a portal's rows are buffered.
//
// One misbehaving session never affects another: each has its own goroutine,
// its own Session, and a panic in one is recovered and reported to that
// client alone.
package server
