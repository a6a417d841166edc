package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/cspine/cspine/store"
)

// Roles of reviewer accounts.
const (
	RoleReviewer = "reviewer"
	RoleAdmin    = "admin"
)

// User is a reviewer account. PasswordHash is a bcrypt or argon2 hash made
// by the review package; this package never sees a password.
type User struct {
	ID           int64 `gorm:"primaryKey"`
	Username     string
	DisplayName  string
	PasswordHash string
	Role         string
	Disabled     bool
	FailedLogins int
	LastLoginAt  *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TableName implements gorm's Tabler.
func (User) TableName() string { return "users" }

// Session is a login session; only a hash of its cookie token is stored.
type Session struct {
	ID         int64 `gorm:"primaryKey"`
	UserID     int64
	TokenHash  string
	CSRFToken  string `gorm:"column:csrf_token"`
	RemoteAddr string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// TableName implements gorm's Tabler.
func (Session) TableName() string { return "sessions" }

// UserInsert creates an account; the username is unique (ErrAlreadyExists).
func (s *Store) UserInsert(ctx context.Context, u *User) error {
	if u.Username == "" || u.PasswordHash == "" {
		return fmt.Errorf("insert user: username and password hash are required")
	}
	if u.Role != RoleReviewer && u.Role != RoleAdmin {
		return fmt.Errorf("insert user: role must be %q or %q, got %q", RoleReviewer, RoleAdmin, u.Role)
	}
	return wrap("insert user", s.q(ctx).Create(u).Error)
}

// UserGetByUsername returns an account by username.
func (s *Store) UserGetByUsername(ctx context.Context, username string) (*User, error) {
	var u User
	return &u, wrap("get user", s.q(ctx).Where("username = ?", username).Take(&u).Error)
}

// UserGetByID returns an account.
func (s *Store) UserGetByID(ctx context.Context, id int64) (*User, error) {
	var u User
	return &u, wrap("get user", s.q(ctx).Take(&u, id).Error)
}

// UserList returns all accounts by username.
func (s *Store) UserList(ctx context.Context) ([]User, error) {
	var out []User
	return out, wrap("list users", s.q(ctx).Order("username").Find(&out).Error)
}

// UserSetPasswordHash replaces an account's password hash.
func (s *Store) UserSetPasswordHash(ctx context.Context, id int64, hash string) error {
	return s.userUpdate(ctx, id, map[string]any{"password_hash": hash})
}

// UserSetDisabled enables or disables an account.
func (s *Store) UserSetDisabled(ctx context.Context, id int64, disabled bool) error {
	return s.userUpdate(ctx, id, map[string]any{"disabled": disabled})
}

// UserRecordLogin counts a login attempt: success resets the failure count
// and stamps LastLoginAt.
func (s *Store) UserRecordLogin(ctx context.Context, id int64, success bool) error {
	if success {
		return s.userUpdate(ctx, id, map[string]any{"failed_logins": 0, "last_login_at": store.Now()})
	}
	return s.userUpdate(ctx, id, map[string]any{"failed_logins": gorm.Expr("failed_logins + 1")})
}

func (s *Store) userUpdate(ctx context.Context, id int64, upd map[string]any) error {
	upd["updated_at"] = store.Now()
	res := s.q(ctx).Model(&User{}).Where("id = ?", id).Updates(upd)
	if res.Error == nil && res.RowsAffected == 0 {
		return wrap("update user", ErrNotFound)
	}
	return wrap("update user", res.Error)
}

// SessionInsert stores a session.
func (s *Store) SessionInsert(ctx context.Context, se *Session) error {
	now := store.Now()
	se.CreatedAt, se.LastSeenAt = now, now
	se.ExpiresAt = store.Normalize(se.ExpiresAt)
	return wrap("insert session", s.q(ctx).Create(se).Error)
}

// SessionGetByTokenHash returns an unexpired session.
func (s *Store) SessionGetByTokenHash(ctx context.Context, tokenHash string, now time.Time) (*Session, error) {
	var se Session
	err := s.q(ctx).Where("token_hash = ? AND expires_at > ?", tokenHash, store.Normalize(now)).Take(&se).Error
	return &se, wrap("get session", err)
}

// SessionTouch records activity and extends the expiry.
func (s *Store) SessionTouch(ctx context.Context, id int64, expiresAt time.Time) error {
	res := s.q(ctx).Model(&Session{}).Where("id = ?", id).
		Updates(map[string]any{"last_seen_at": store.Now(), "expires_at": store.Normalize(expiresAt)})
	if res.Error == nil && res.RowsAffected == 0 {
		return wrap("touch session", ErrNotFound)
	}
	return wrap("touch session", res.Error)
}

// SessionDelete ends a session (logout).
func (s *Store) SessionDelete(ctx context.Context, id int64) error {
	return wrap("delete session", s.q(ctx).Delete(&Session{}, id).Error)
}

// SessionDeleteExpired removes sessions expired before now.
func (s *Store) SessionDeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	res := s.q(ctx).Where("expires_at <= ?", store.Normalize(now)).Delete(&Session{})
	return res.RowsAffected, wrap("delete expired sessions", res.Error)
}
