package valserver

import (
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/ykstack/ykstack/val"
)

// verifyParams returns the parameters of a verify request as YK-VAL chose
// them: the query string's if it has any parameter, otherwise the POST form's
// (application/x-www-form-urlencoded or multipart/form-data).
func verifyParams(w http.ResponseWriter, r *http.Request) url.Values {
	if q := val.ParseQuery(r.URL.RawQuery); len(q) > 0 || r.Method != http.MethodPost {
		return q
	}
	return postForm(w, r)
}

// requestParams returns the parameters of the query string, replaced by those
// of a POST form, like PHP's $_REQUEST.
func requestParams(w http.ResponseWriter, r *http.Request) url.Values {
	q := val.ParseQuery(r.URL.RawQuery)
	if r.Method == http.MethodPost {
		for k, vs := range postForm(w, r) {
			q[k] = vs
		}
	}
	return q
}

// postForm parses a POST body of at most MaxBodySize bytes like PHP's $_POST.
// A body that is too large, of another type, or unreadable gives no
// parameters.
func postForm(w http.ResponseWriter, r *http.Request) url.Values {
	if r.Body == nil {
		return url.Values{}
	}
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodySize)
	switch ct {
	case "application/x-www-form-urlencoded":
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return url.Values{}
		}
		return val.ParseQuery(string(body))
	case "multipart/form-data":
		if params["boundary"] == "" {
			return url.Values{}
		}
		if err := r.ParseMultipartForm(MaxBodySize); err != nil || r.MultipartForm == nil {
			return url.Values{}
		}
		defer r.MultipartForm.RemoveAll()
		q := url.Values{}
		for k, vs := range r.MultipartForm.Value {
			if k != "" && len(vs) > 0 {
				q[k] = vs[len(vs)-1:]
			}
		}
		return q
	}
	return url.Values{}
}

// last returns the last value of key in q, as PHP keeps it, or "".
func last(q url.Values, key string) string {
	vs := q[key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// remoteIP returns the address of the peer without its port, in canonical
// form: what YK-VAL's allow-lists compare with PHP's REMOTE_ADDR.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return canonicalIP(host)
}

// canonicalIP writes an IP address in its canonical text form (IPv4-mapped
// IPv6 addresses as IPv4, IPv6 compressed and lower case), so "::1" and
// "0:0:0:0:0:0:0:1" compare equal; anything else is returned unchanged.
func canonicalIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	return a.Unmap().String()
}
