// Package val defines the YK-VAL validation protocol's contracts: the
// response statuses, the API client and key-state records kept in Yubico's
// clients, yubikeys and queue tables, the Store every storage backend
// fulfils, and the KSM interface through which a validation server decrypts
// OTPs.
//
// Package val never imports the ksm packages: an in-process KSM is adapted to
// the KSM interface by the command that wires a server together.
//
// Security: API secrets are HMAC keys. Compare signatures with hmac.Equal
// (constant time) and never log a secret, a full OTP or a signature at the
// default log level.
package val

import (
	"context"
	"errors"
)

// Status is the status word of a verify (or sync) response.
type Status string

// The statuses of the validation protocol.
const (
	StatusOK                  Status = "OK"
	StatusBadOTP              Status = "BAD_OTP"
	StatusReplayedOTP         Status = "REPLAYED_OTP"
	StatusReplayedRequest     Status = "REPLAYED_REQUEST"
	StatusBadSignature        Status = "BAD_SIGNATURE"
	StatusMissingParameter    Status = "MISSING_PARAMETER"
	StatusNoSuchClient        Status = "NO_SUCH_CLIENT"
	StatusOperationNotAllowed Status = "OPERATION_NOT_ALLOWED"
	StatusBackendError        Status = "BACKEND_ERROR"
	StatusNotEnoughAnswers    Status = "NOT_ENOUGH_ANSWERS"
)

// Statuses lists every status a server may answer, for metrics labels.
var Statuses = []Status{
	StatusOK, StatusBadOTP, StatusReplayedOTP, StatusReplayedRequest, StatusBadSignature,
	StatusMissingParameter, StatusNoSuchClient, StatusOperationNotAllowed, StatusBackendError,
	StatusNotEnoughAnswers,
}

// Client is an API client: one row of the clients table.
type Client struct {
	ID      int64
	Active  bool
	Created int64  // unix seconds
	Secret  string // base64 of the HMAC-SHA1 key (28 characters for 20 bytes)
	Email   string
	Notes   string
	OTP     string
}

// KeyState is what a validation server remembers of a YubiKey: one row of
// its yubikeys table. Counter, Use, Low, High and Modified are -1 for a key
// enrolled but never accepted.
type KeyState struct {
	PublicName string
	Active     bool
	Created    int64 // unix seconds
	Modified   int64 // unix seconds of the last accepted OTP, at the server that accepted it
	Counter    int   // session counter
	Use        int   // session use
	Low        int   // timestamp low
	High       int   // timestamp high
	Nonce      string
	Notes      string
}

// Position is a token's place in a key's sequence of OTPs.
type Position struct{ Counter, Use int }

// Pos returns the state's (Counter, Use) position.
func (k KeyState) Pos() Position { return Position{k.Counter, k.Use} }

// Less reports whether p comes strictly before q: a lower counter, or the
// same counter and a lower use.
func (p Position) Less(q Position) bool {
	return p.Counter < q.Counter || p.Counter == q.Counter && p.Use < q.Use
}

// QueueEntry is one row of the replication queue: an accepted OTP still to
// be sent to one peer of the sync pool.
type QueueEntry struct {
	Queued      *int64 // unix seconds it was queued; nil means "retry now"
	Modified    int64
	ServerNonce string
	OTP         string
	Server      string // the peer's sync URL
	Info        string // "yk_publicname=…&yk_counter=…&…&nonce=…,local_counter=…&local_use=…"
}

// Sizes of Yubico's queue columns.
const (
	MaxQueueServerNonceLen = 32  // queue.server_nonce VARCHAR(32)
	MaxQueueOTPLen         = 100 // queue.otp VARCHAR(100)
	MaxQueueServerLen      = 100 // queue.server VARCHAR(100)
	MaxQueueInfoLen        = 256 // queue.info VARCHAR(256)
)

// ValidQueueEntry reports whether e fits Yubico's queue table: ServerNonce,
// OTP, Server and Info non-empty and no longer than their columns. A longer
// value would be cut short by a lenient MySQL, and an entry that cannot be
// found again by its server is never deleted.
func ValidQueueEntry(e QueueEntry) bool {
	return e.ServerNonce != "" && len(e.ServerNonce) <= MaxQueueServerNonceLen &&
		e.OTP != "" && len(e.OTP) <= MaxQueueOTPLen &&
		e.Server != "" && len(e.Server) <= MaxQueueServerLen &&
		e.Info != "" && len(e.Info) <= MaxQueueInfoLen
}

// Errors of the Store contract.
var (
	ErrNotFound  = errors.New("val: not found")
	ErrDuplicate = errors.New("val: already exists")
)

// Store keeps a validation server's clients, key states and queue.
// Implementations must be safe for concurrent use, from several processes
// sharing one database too, and must guarantee:
//
//   - Every failure is returned as an error (wrapped, never swallowed), so
//     that a server answers BACKEND_ERROR, never OK, when storage fails.
//   - Client returns the client with that id only if it is active;
//     otherwise ErrNotFound.
//   - CreateClients gives the new clients consecutive ids after the highest
//     existing one (1 for an empty table), atomically with respect to other
//     CreateClients calls, and returns them with their ids set.
//   - ImportClients inserts the clients whose ids do not exist yet and leaves
//     existing ones untouched; it returns how many it inserted.
//   - KeyState returns ErrNotFound for an unknown public name.
//   - EnrollKey inserts a new key state (active, created = now, modified -1,
//     counters -1, nonce "0000000000000000") unless one exists, and returns
//     the stored state either way: two concurrent calls return the same row.
//   - AdvanceKey is the replay guard: in one atomic compare-and-set it stores
//     next's Modified, Counter, Use, Low, High and Nonce only if next.Pos()
//     is strictly after the stored position, and reports whether it did. Of
//     any number of concurrent calls with the same position, at most one
//     returns true. It never changes Active, Created or Notes.
//   - SetActive changes only the Active flag; ErrNotFound if the key is unknown.
//   - ImportKey inserts an unknown key state as given, or updates a known one
//     with all of k's fields only if k.Pos() is after the stored position,
//     and reports whether it wrote.
//   - EachClient and EachKey visit every row ordered by id and by public name.
//   - AdvanceKeyQueued is AdvanceKey that also inserts entries (one per sync
//     peer) in the same transaction, only when the compare-and-set won:
//     either the new counters and all their queue entries are stored, or
//     neither is (an error, or false with no entries written). An entry that
//     does not fit Yubico's queue columns (ValidQueueEntry) is an error, and
//     nothing is written. AdvanceKeyQueued(ctx, next, nil) is AdvanceKey.
//   - SyncKey is the receiving end of replication, atomic with respect to
//     every other write of the key: holding the key's row locked, it reads
//     the stored state (enrolling the key as EnrollKey does, created = now,
//     when it is unknown), stores remote's Modified, Counter, Use, Low, High
//     and Nonce only if remote.Pos() is strictly after the stored position,
//     and returns the state as it was before, the one the update compared
//     against, with whether it wrote. Like AdvanceKey it never changes
//     Active, Created or Notes, and it updates inactive keys too.
//   - Enqueue adds queue entries in one transaction: all or, on an error,
//     none (an entry ValidQueueEntry refuses is an error). QueueLength
//     counts the entries and QueueLengths counts them by server.
//   - DueEntries returns up to limit entries for server that were queued
//     before the unix time before, or whose queued is NULL ("retry now").
//   - SettleQueue deletes every entry matching one of done and sets queued
//     to NULL on every entry matching one of retry, in one transaction; an
//     entry matches when its Modified, ServerNonce and Server are equal
//     (Yubico's queue table has no key).
type Store interface {
	Client(ctx context.Context, id int64) (Client, error)
	CreateClients(ctx context.Context, template Client, n int) ([]Client, error)
	ImportClients(ctx context.Context, clients []Client) (int, error)
	EachClient(ctx context.Context, fn func(Client) error) error

	KeyState(ctx context.Context, publicName string) (KeyState, error)
	EnrollKey(ctx context.Context, publicName string, now int64) (KeyState, error)
	AdvanceKey(ctx context.Context, next KeyState) (bool, error)
	AdvanceKeyQueued(ctx context.Context, next KeyState, entries []QueueEntry) (bool, error)
	SyncKey(ctx context.Context, remote KeyState, now int64) (before KeyState, updated bool, err error)
	SetActive(ctx context.Context, publicName string, active bool) error
	ImportKey(ctx context.Context, k KeyState) (bool, error)
	EachKey(ctx context.Context, fn func(KeyState) error) error

	Enqueue(ctx context.Context, entries []QueueEntry) error
	QueueLength(ctx context.Context) (int, error)
	QueueLengths(ctx context.Context) (map[string]int, error)
	DueEntries(ctx context.Context, server string, before int64, limit int) ([]QueueEntry, error)
	SettleQueue(ctx context.Context, done, retry []QueueEntry) error

	Ping(ctx context.Context) error
	Close() error
}

// Decrypted is what a KSM tells of an OTP it decrypted: the token's counters.
type Decrypted struct {
	Counter uint16 // raw session counter, bit 15 included
	Low     uint16
	High    uint8
	Use     uint8
}

// Errors a KSM returns.
var (
	// ErrKSMRejected means every KSM asked answered that the OTP is not
	// genuine (unknown key, corrupt OTP, bad format): the answer is BAD_OTP.
	ErrKSMRejected = errors.New("val: KSM rejected the OTP")
	// ErrKSMUnavailable means no KSM gave a verdict (unreachable, timeout,
	// HTTP error, malformed answer, database error): the answer is
	// BACKEND_ERROR, never OK.
	ErrKSMUnavailable = errors.New("val: no KSM available")
)

// KSM decrypts OTPs for a validation server. Decrypt returns an error
// wrapping ErrKSMRejected or ErrKSMUnavailable when it has no result.
type KSM interface {
	Decrypt(ctx context.Context, otp string) (Decrypted, error)
}
