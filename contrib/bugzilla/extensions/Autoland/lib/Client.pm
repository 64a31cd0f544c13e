# A small client for Autoland's HTTP API, used by the Autoland Bugzilla extension.
#
# It uses core Perl only (HTTP::Tiny, JSON::PP) and nothing from Bugzilla, so it can be
# used and tested outside Bugzilla (see t/client.pl). Errors are thrown as one-line
# strings ending in "\n"; they never contain the token.

package Bugzilla::Extension::Autoland::Client;

use 5.10.1;
use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP ();

our $VERSION = '1.0';

# Largest answer read from Autoland, and longest server message passed on.
use constant MAX_RESPONSE_BYTES => 1024 * 1024;
use constant MAX_MESSAGE_CHARS  => 500;

# An http(s) base URL: scheme, host[:port], optional path; no query, fragment, spaces,
# quotes or other characters that have no business in a URL.
my $URL_RE = qr{^(https?://[^\s/?#"'<>\\^`{|}]+(?:/[^\s?#"'<>\\^`{|}]*)?)\z}i;

# True if $url is acceptable as Autoland's base URL (also used by the parameter check).
sub valid_url {
    my ($class, $url) = @_;
    return defined $url && $url =~ $URL_RE ? 1 : 0;
}

# new(url => 'https://autoland.example.com', token => '...', timeout => 5)
# The token is needed by submit() only.
sub new {
    my ($class, %args) = @_;
    my ($url) = (defined $args{url} ? $args{url} : '') =~ $URL_RE
        or die "the Autoland URL must start with http:// or https://\n";
    $url =~ s{/+\z}{};

    my $timeout = $args{timeout};
    $timeout = 5 unless defined $timeout && $timeout =~ /^\d+(?:\.\d+)?\z/ && $timeout > 0;

    my $self = bless {
        url   => $url,
        token => $args{token},
        json  => JSON::PP->new->utf8->canonical,
    }, $class;
    $self->{http} = HTTP::Tiny->new(
        agent      => "Bugzilla-Autoland/$VERSION",
        timeout    => $timeout,
        verify_SSL => 1,
        max_size   => MAX_RESPONSE_BYTES,
    );
    return $self;
}

# The base URL, without a trailing slash (for links to Autoland's pages).
sub url { return $_[0]->{url} }

# GET /api/bugs/<bug id>: the destinations and the bug's requests, as a hashref.
sub bug_status {
    my ($self, $bug_id) = @_;
    my ($id) = (defined $bug_id ? $bug_id : '') =~ /^(\d{1,10})\z/
        or die "the bug id must be a positive number\n";
    return $self->_request(GET => "/api/bugs/$id");
}

# POST /api/bugzilla/requests. Takes bug, attachments (arrayref of ids; empty: every
# current patch), destinations (arrayref of names; empty: Autoland's default), try_syntax
# (optional), requester (the login of the person asking). Returns {id, stage, url}.
sub submit {
    my ($self, %args) = @_;
    die "the Autoland token is not set\n"
        unless defined $self->{token} && $self->{token} ne '';

    my $bug          = $args{bug};
    my $attachments  = $args{attachments} || [];
    my $destinations = $args{destinations} || [];
    my $requester    = $args{requester};
    die "the bug id must be a positive number\n"
        unless defined $bug && $bug =~ /^\d{1,10}\z/ && $bug > 0;
    die "attachments must be a list of attachment ids\n"
        if ref $attachments ne 'ARRAY' || grep { !defined($_) || !/^\d{1,10}\z/ } @$attachments;
    die "destinations must be a list of names\n"
        if ref $destinations ne 'ARRAY' || grep { !defined($_) || ref($_) } @$destinations;
    die "the requester is missing\n" unless defined $requester && $requester ne '';

    my %body = (
        bug          => 0 + $bug,
        attachments  => [ map { 0 + $_ } @$attachments ],
        destinations => [ map {"$_"} @$destinations ],
        requester    => "$requester",
    );
    # Autoland takes a missing try_syntax as "none"; an empty string would be refused.
    $body{try_syntax} = "$args{try_syntax}"
        if defined $args{try_syntax} && $args{try_syntax} ne '';

    my $answer = $self->_request(POST => '/api/bugzilla/requests', \%body);
    die "Autoland's answer has no request id\n"
        unless defined $answer->{id} && !ref $answer->{id} && $answer->{id} =~ /^\d+\z/;
    return $answer;
}

# Sends one request; returns the decoded JSON object of a 2xx answer, dies otherwise.
sub _request {
    my ($self, $method, $path, $body) = @_;
    my %headers = (Accept => 'application/json');
    my %options = (headers => \%headers);
    if (defined $body) {
        $headers{'Content-Type'}  = 'application/json';
        $headers{'Authorization'} = "Bearer $self->{token}";
        $options{content}         = $self->{json}->encode($body);
    }

    my $response = $self->{http}->request($method, $self->{url} . $path, \%options);
    my $status   = $response->{status};
    my $content  = defined $response->{content} ? $response->{content} : '';

    # HTTP::Tiny reports connection failures, timeouts and TLS errors as status 599.
    die $self->_clean("Autoland is not reachable: $content") . "\n" if $status == 599;

    my $data = $content eq '' ? undef : eval { $self->{json}->decode($content) };
    $data = undef unless ref $data eq 'HASH';

    if ($response->{success}) {
        return $data if $data;
        die "Autoland's answer is not a JSON object (HTTP $status)\n";
    }

    # Errors are {"error": "conflict", "message": "..."}; anything else (a proxy's HTML
    # page) is summed up by the status line only.
    my $code    = $data && defined $data->{error} && !ref $data->{error} ? $data->{error} : '';
    my $message = $data && defined $data->{message} && !ref $data->{message}
        ? $data->{message}
        : ($response->{reason} || 'error');
    my $what = $code ne '' ? "HTTP $status, $code" : "HTTP $status";
    die $self->_clean("Autoland: $message ($what)") . "\n";
}

# One line, not too long, and never the token (should a server or proxy echo it).
sub _clean {
    my ($self, $text) = @_;
    my $token = $self->{token};
    $text =~ s/\Q$token\E/[token]/g if defined $token && $token ne '';
    $text =~ s/[\x00-\x1f\x7f]+/ /g;
    $text =~ s/\s+\z//;
    $text = substr($text, 0, MAX_MESSAGE_CHARS) . '...' if length($text) > MAX_MESSAGE_CHARS;
    return $text;
}

1;
