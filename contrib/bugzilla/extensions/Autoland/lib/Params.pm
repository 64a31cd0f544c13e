# The "Autoland" panel of Administration -> Parameters (added by config_add_panels in
# Extension.pm; its texts are in template/en/default/admin/params/autoland.html.tmpl).

package Bugzilla::Extension::Autoland::Params;

use 5.10.1;
use strict;
use warnings;

use Bugzilla::Extension::Autoland::Client;

# Position of the panel in the list of parameter panels.
our $sortkey = 1750;

sub get_param_list {
    my ($class) = @_;
    return (
        {
            name    => 'autoland_url',
            type    => 't',
            default => '',
            checker => \&_check_url,
        },
        {
            name    => 'autoland_token',
            type    => 't',
            default => '',
        },
        {
            name    => 'autoland_timeout',
            type    => 't',
            default => '5',
            checker => \&_check_timeout,
        },
    );
}

# Checkers get the new value and return '' when it is fine, else the error to show.

sub _check_url {
    my ($value) = @_;
    return '' if !defined $value || $value eq '';
    return '' if Bugzilla::Extension::Autoland::Client->valid_url($value);
    return 'must be empty (Autoland off) or a URL starting with http:// or https://,'
        . ' without query or fragment, e.g. https://autoland.example.com';
}

sub _check_timeout {
    my ($value) = @_;
    return '' if defined $value && $value =~ /^\d+\z/ && $value >= 1 && $value <= 60;
    return 'must be a whole number of seconds from 1 to 60';
}

1;
