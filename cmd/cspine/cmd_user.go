package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/review"
)

// userStdin is where passwords are read when $CSPINE_USER_PASSWORD is
// unset (a variable so that tests can feed it).
var userStdin io.Reader = os.Stdin

func init() {
	register(command{
		name:    "user",
		summary: "manage review accounts (add the first admin, list, disable, set passwords)",
		usage: `Usage: cspine user add    --username NAME [--role reviewer|admin] [--display-name TEXT] [--config FILE] [--database DSN]
       cspine user passwd --username NAME [--config FILE] [--database DSN]
       cspine user disable|enable --username NAME [--config FILE] [--database DSN]
       cspine user list   [--config FILE] [--database DSN]

Manages the accounts of the QA review tool. The password of add and passwd
is read from $CSPINE_USER_PASSWORD, else from the first line of standard
input (so it never appears in the process list or the shell history); it needs
at least 12 characters and is stored as a bcrypt hash. Pending schema
migrations are applied first. Each change is recorded as an audit event.

The database is --database, else database.dsn of the configuration file,
else $CSPINE_DATABASE_DSN, else sqlite:<data_dir>/cspine.db.

Example (the first administrator):
  read -rs CSPINE_USER_PASSWORD && export CSPINE_USER_PASSWORD
  cspine user add --username admin --role admin --display-name "Ada Admin"`,
		run: runUser,
	})
}

func runUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stderr, commands["user"].usage)
			return nil
		}
		return fmt.Errorf("%w: want a subcommand: add, passwd, disable, enable or list", errUsage)
	}
	sub := args[0]
	fs := newFlagSet(commands["user"], stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file`")
	dsn := fs.String("database", "", "database `DSN` (postgres://... or sqlite:PATH)")
	username := fs.String("username", "", "account `name`")
	role := fs.String("role", models.RoleReviewer, "`role`: reviewer or admin")
	display := fs.String("display-name", "", "name shown and written as the verifying observer (\"Given Family\")")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	switch sub {
	case "add", "passwd", "disable", "enable":
		if *username == "" {
			return fmt.Errorf("%w: --username is required", errUsage)
		}
	case "list":
	default:
		return fmt.Errorf("%w: unknown subcommand %q (want add, passwd, disable, enable or list)", errUsage, sub)
	}
	if sub == "add" && *role != models.RoleReviewer && *role != models.RoleAdmin {
		return fmt.Errorf("%w: --role must be reviewer or admin", errUsage)
	}
	_, db, err := openAdminDB(ctx, *cfgPath, *dsn, stderr)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.MigrateUp(ctx); err != nil {
		return err
	}
	st := models.NewStore(db.Gorm)
	actor := "cli"
	if u, err := user.Current(); err == nil {
		actor = "cli:" + u.Username
	}
	audit := func(tx *models.Store, action string, u *models.User, after any) error {
		_, err := tx.AuditEventInsert(ctx, models.AuditEventInsertParams{Actor: actor, Action: action, EntityType: "user",
			EntityID: fmt.Sprint(u.ID), After: after})
		return err
	}

	switch sub {
	case "list":
		us, err := st.UserList(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tDISPLAY NAME\tSTATE\tLAST LOGIN")
		for _, u := range us {
			state, last := "active", "never"
			if u.Disabled {
				state = "disabled"
			}
			if u.LastLoginAt != nil {
				last = u.LastLoginAt.UTC().Format("2006-01-02 15:04Z")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, u.DisplayName, state, last)
		}
		return tw.Flush()
	case "add":
		pw, err := readPassword()
		if err != nil {
			return err
		}
		return st.InTx(ctx, func(tx *models.Store) error {
			u, err := review.CreateUser(ctx, tx, *username, *display, *role, pw)
			if errors.Is(err, models.ErrAlreadyExists) {
				return fmt.Errorf("user %q exists already", *username)
			}
			if err != nil {
				return fmt.Errorf("add user: %w", err)
			}
			if err := audit(tx, "user.create", u, map[string]string{"username": u.Username, "role": u.Role}); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "added %s (%s)\n", u.Username, u.Role)
			return nil
		})
	}
	u, err := st.UserGetByUsername(ctx, *username)
	if errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("no user %q", *username)
	}
	if err != nil {
		return err
	}
	switch sub {
	case "passwd":
		pw, err := readPassword()
		if err != nil {
			return err
		}
		h, err := review.HashPassword(pw)
		if err != nil {
			return err
		}
		return st.InTx(ctx, func(tx *models.Store) error {
			if err := tx.UserSetPasswordHash(ctx, u.ID, h); err != nil {
				return err
			}
			// Existing sessions end with the old password.
			if err := tx.DB().WithContext(ctx).Where("user_id = ?", u.ID).Delete(&models.Session{}).Error; err != nil {
				return fmt.Errorf("end sessions: %w", err)
			}
			fmt.Fprintf(stdout, "password of %s changed; its sessions ended\n", u.Username)
			return audit(tx, "user.password", u, nil)
		})
	default: // disable, enable
		disabled := sub == "disable"
		return st.InTx(ctx, func(tx *models.Store) error {
			if err := tx.UserSetDisabled(ctx, u.ID, disabled); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %sd\n", u.Username, sub)
			return audit(tx, "user."+sub, u, map[string]bool{"disabled": disabled})
		})
	}
}

// readPassword takes the password from $CSPINE_USER_PASSWORD or the first
// line of standard input.
func readPassword() (string, error) {
	if pw := os.Getenv("CSPINE_USER_PASSWORD"); pw != "" {
		return pw, nil
	}
	line, err := bufio.NewReader(userStdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password: set $CSPINE_USER_PASSWORD or give it on standard input")
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("empty password")
	}
	return pw, nil
}
