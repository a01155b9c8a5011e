package yubipam

import (
	"errors"
	"strconv"
)

// Code is a PAM return code with Linux-PAM's numeric value. A Code is also
// an error, so Transaction methods can return the code PAM gave them.
type Code int

// The PAM return codes the module uses (Linux-PAM's values).
const (
	Success         Code = 0  // PAM_SUCCESS
	ServiceErr      Code = 3  // PAM_SERVICE_ERR
	SystemErr       Code = 4  // PAM_SYSTEM_ERR
	BufErr          Code = 5  // PAM_BUF_ERR
	PermDenied      Code = 6  // PAM_PERM_DENIED
	AuthErr         Code = 7  // PAM_AUTH_ERR
	AuthinfoUnavail Code = 9  // PAM_AUTHINFO_UNAVAIL
	UserUnknown     Code = 10 // PAM_USER_UNKNOWN
	ConvErr         Code = 19 // PAM_CONV_ERR
	Ignore          Code = 25 // PAM_IGNORE
	Abort           Code = 26 // PAM_ABORT
	ConvAgain       Code = 30 // PAM_CONV_AGAIN
	Incomplete      Code = 31 // PAM_INCOMPLETE
)

var codeNames = map[Code]string{
	Success:         "PAM_SUCCESS",
	ServiceErr:      "PAM_SERVICE_ERR",
	SystemErr:       "PAM_SYSTEM_ERR",
	BufErr:          "PAM_BUF_ERR",
	PermDenied:      "PAM_PERM_DENIED",
	AuthErr:         "PAM_AUTH_ERR",
	AuthinfoUnavail: "PAM_AUTHINFO_UNAVAIL",
	UserUnknown:     "PAM_USER_UNKNOWN",
	ConvErr:         "PAM_CONV_ERR",
	Ignore:          "PAM_IGNORE",
	Abort:           "PAM_ABORT",
	ConvAgain:       "PAM_CONV_AGAIN",
	Incomplete:      "PAM_INCOMPLETE",
}

// String returns the code's C name, e.g. "PAM_AUTH_ERR".
func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return "PAM_" + strconv.Itoa(int(c))
}

// Error returns the code's C name.
func (c Code) Error() string { return "yubipam: " + c.String() }

// Style is a PAM conversation message style.
type Style int

// Conversation styles (Linux-PAM's values).
const (
	PromptEchoOff Style = 1 // PAM_PROMPT_ECHO_OFF
	PromptEchoOn  Style = 2 // PAM_PROMPT_ECHO_ON
	ErrorMsg      Style = 3 // PAM_ERROR_MSG
	TextInfo      Style = 4 // PAM_TEXT_INFO
)

// Transaction is the part of a PAM handle the module needs. Methods return
// nil on success or the PAM error code they got (as a Code).
type Transaction interface {
	// User returns the user name (pam_get_user).
	User() (string, error)
	// Authtok returns the PAM_AUTHTOK item; ok is false when it is not set
	// (NULL), which differs from an empty one.
	Authtok() (tok string, ok bool, err error)
	// SetAuthtok sets PAM_AUTHTOK.
	SetAuthtok(tok string) error
	// Prompt asks one question through the application's conversation
	// function; ok is false when the application answered with no string
	// (NULL).
	Prompt(style Style, msg string) (resp string, ok bool, err error)
}

// codeOf returns the PAM code err carries, or PAM_SYSTEM_ERR.
func codeOf(err error) Code {
	var c Code
	if errors.As(err, &c) && c != Success {
		return c
	}
	return SystemErr
}
